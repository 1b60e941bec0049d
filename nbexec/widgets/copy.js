// nbexec copy button: copies the model's "text" (the %executor line) to the clipboard.
function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button nbexec-copy";
  button.textContent = "Copy";
  button.title = "Copy the %executor line";
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(model.get("text"));
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Select the line and copy it";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  el.appendChild(button);
}
export default { render };
