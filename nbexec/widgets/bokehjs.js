// nbexec: put BokehJS into the page once, for jupyter_bokeh's BokehModel views.
// jupyter_bokeh's JupyterLab extension renders with the page's window.Bokeh but does not ship it.
// The kernel sends bokeh's own bokeh.min.js (its version) as a comm message buffer: no CDN, and
// nothing stored in the notebook. Then this view says "ready" and the kernel shows the chart.
function loaded() {
  return typeof window.Bokeh !== "undefined" && window.Bokeh.embed !== undefined;
}

function render({ model, el }) {
  el.classList.add("nbexec-bokehjs");
  const ready = () => model.send({ kind: "ready" });
  if (loaded()) {
    ready();
    return;
  }
  if (window.__nbexecBokehJS === undefined) {
    let settle;
    window.__nbexecBokehJS = new Promise((resolve, reject) => { settle = { resolve, reject }; });
    model.on("msg:custom", (msg, buffers) => {
      if (!msg || msg.kind !== "bokehjs" || settle === undefined) return;
      const { resolve, reject } = settle;
      settle = undefined;
      const script = document.createElement("script");
      script.src = URL.createObjectURL(new Blob([buffers[0]], { type: "text/javascript" }));
      script.onload = () => (loaded() ? resolve() : reject(new Error("window.Bokeh missing")));
      script.onerror = () => reject(new Error("bokeh.min.js did not load"));
      document.head.appendChild(script);
    });
    model.send({ kind: "want" });
  }
  window.__nbexecBokehJS.then(ready, (error) => {
    window.__nbexecBokehJS = undefined; // a later view may try again
    el.textContent = `nbexec: BokehJS could not be loaded (${error.message})`;
  });
}

export default { render };
