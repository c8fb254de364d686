from django.apps import AppConfig


class JupyterSyncConfig(AppConfig):
    name = "jupyter_sync"
    verbose_name = "Jupyter"

    def ready(self) -> None:
        from jupyter_sync import models
        from jupyter_sync.projection import NotebookProjector
        from jupyter_sync.schema import JUPYTER
        from tables.projection import TableProjector, register_projector
        from tables.schema import register_schema

        register_schema(JUPYTER)
        register_projector(
            JUPYTER.name,
            TableProjector(
                {
                    "status": models.ServerStatus,
                    "kernelspecs": models.Kernelspec,
                    "kernels": models.Kernel,
                    "sessions": models.JupyterSession,
                    "contents": models.Content,
                    "terminals": models.Terminal,
                    "executions": models.Execution,
                    "requests": models.Request,
                    "documents": models.Document,
                }
            ),
        )
        register_projector("notebook", NotebookProjector())
