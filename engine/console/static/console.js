// herald console: progressive enhancement only (every page works without it). "Select all" boxes tick the
// boxes of their form.
document.addEventListener("change", function (e) {
  var box = e.target;
  if (!box.matches || !box.matches("input[data-select-all]")) return;
  box.form.querySelectorAll("input[type=checkbox][name=id]").forEach(function (b) { b.checked = box.checked; });
});
