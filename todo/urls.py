"""URLs of the todo example app, mounted at /todo/."""

from django.contrib.auth.views import LoginView
from django.urls import path

from todo import views

app_name = "todo"

urlpatterns = [
    path("", views.index, name="index"),
    # Datastore names start with a letter or digit, so "login" could clash only with a
    # datastore of that name, whose page this one hides.
    path(
        "login/",
        LoginView.as_view(template_name="todo/login.html", next_page="todo:index"),
        name="login",
    ),
    path("<str:datastore>/", views.todo_list, name="list"),
]
