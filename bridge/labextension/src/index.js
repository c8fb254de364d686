// Tells the people in this JupyterLab when the bridge cannot reach the RTC server, and when it
// is back. The docprovider keeps what is typed in the window and sends it on reconnection, but
// shows nothing meanwhile (it only reacts to close code 1003, by disposing the document, so a
// close code cannot carry this). The bridge says it instead, on Jupyter's own event bus
// (pushed as it sees the RTC server go and come back), and answers the state at page load on
// its status route; both behind Jupyter's authentication, neither naming the RTC server.
//
// No @jupyterlab package is imported: the notification is JupyterLab's own, through its
// commands (apputils:notify, apputils:update-notification), and requests use the page's
// Jupyter settings, so the extension bundles nothing but this file.

const SCHEMA_ID = 'https://events.jupyter.org/jupyter_rtc_bridge/rtc_server/v1';
const STATUS_PATH = 'api/rtc-bridge/status';
const DOWN_MESSAGE =
  'Collaboration server unreachable: your edits are kept in this window and sent when it is back.';
const BACK_MESSAGE = 'Collaboration server reachable again: your edits are being sent.';
const BACK_SHOWN_MS = 6000;

function joinUrl(base, path) {
  return base.replace(/\/+$/, '') + '/' + path;
}

// The state the bridge knows now ({reachable: boolean}), or null when it cannot be read.
async function fetchStatus(settings) {
  const headers = {};
  if (settings.token) {
    headers.Authorization = `token ${settings.token}`;
  }
  try {
    const response = await fetch(joinUrl(settings.baseUrl, STATUS_PATH), {
      headers,
      credentials: 'same-origin',
      cache: 'no-store'
    });
    if (!response.ok) {
      return null;
    }
    return await response.json();
  } catch (error) {
    return null;
  }
}

const plugin = {
  id: 'jupyter-rtc-bridge:rtc-server-status',
  description: 'Shows a notification while the collaboration server cannot be reached.',
  autoStart: true,
  activate: (app) => {
    const { commands, serviceManager } = app;
    let shownId = null; // the notification shown while down, then the "back" one
    let down = false;
    // One change at a time: an event may arrive while the load-time status is being shown.
    let queue = Promise.resolve();

    const show = async (reachable) => {
      if (!reachable && !down) {
        down = true;
        if (shownId !== null) {
          await commands.execute('apputils:dismiss-notification', { id: shownId });
        }
        shownId = await commands.execute('apputils:notify', {
          message: DOWN_MESSAGE,
          type: 'warning',
          options: { autoClose: false }
        });
      } else if (reachable && down) {
        down = false;
        const updated =
          shownId !== null &&
          (await commands.execute('apputils:update-notification', {
            id: shownId,
            message: BACK_MESSAGE,
            type: 'success',
            autoClose: BACK_SHOWN_MS
          }));
        if (!updated) {
          // The person closed the warning: say it is back in a notification of its own.
          shownId = await commands.execute('apputils:notify', {
            message: BACK_MESSAGE,
            type: 'success',
            options: { autoClose: BACK_SHOWN_MS }
          });
        }
      }
    };
    const enqueue = (reachable) => {
      queue = queue.then(() => show(reachable)).catch((error) => {
        console.warn('jupyter-rtc-bridge: could not show the collaboration status', error);
      });
    };

    // Events first, then the state at load: nothing said in between is missed.
    serviceManager.events.stream.connect((_, event) => {
      if (event && event.schema_id === SCHEMA_ID && typeof event.reachable === 'boolean') {
        enqueue(event.reachable);
      }
    });
    void app.restored.then(async () => {
      const status = await fetchStatus(serviceManager.serverSettings);
      if (status && typeof status.reachable === 'boolean') {
        enqueue(status.reachable);
      }
    });
  }
};

export default plugin;
