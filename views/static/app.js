// Provisor's small behaviours on top of htmx. No inline scripts: the
// Content-Security-Policy allows only files from this site.
(function () {
  "use strict";

  // Four-digit years, whatever the browser's locale prefers.
  var parts = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
  var fmt = new Intl.DateTimeFormat(undefined, parts);
  var zoned = {};

  // zonedFormat shows a time in a named zone (a schedule's), and names it.
  function zonedFormat(tz) {
    if (!zoned[tz]) {
      try {
        zoned[tz] = new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: tz, timeZoneName: "short" }, parts, { second: undefined }));
      } catch (err) {
        zoned[tz] = null;
      }
    }
    return zoned[tz];
  }

  // Times are sent as ISO 8601 and shown in the browser's time zone, or in
  // the zone they name (data-tz).
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localized) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.title = el.getAttribute("datetime");
      if (el.dataset.tz) {
        var z = zonedFormat(el.dataset.tz);
        if (z) el.textContent = z.format(d) + (el.dataset.tz === "UTC" ? "" : " (" + el.dataset.tz + ")");
      } else {
        el.textContent = fmt.format(d);
      }
      el.dataset.localized = "1";
    });
  }

  function dialog() { return document.getElementById("job-dialog"); }

  function setOpenParam(url) {
    var u = new URL(window.location.href);
    if (url) {
      u.searchParams.set("open", url.split("/").pop());
    } else {
      u.searchParams.delete("open");
    }
    history.replaceState(null, "", u.toString());
  }

  function openDialog(url) {
    htmx.ajax("GET", url, { target: "#dialog-body" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    document.querySelectorAll("[data-picker] .picker").forEach(dropPicked);
    document.querySelectorAll("input[data-tz-offset]").forEach(function (el) {
      if (!el.value) el.value = String(new Date().getTimezoneOffset());
    });
    var d = dialog();
    if (d && d.dataset.load) openDialog(d.dataset.load);
    if (d) d.addEventListener("close", function () {
      setOpenParam(null);
      // Its content goes, and with it the poller that keeps it fresh.
      var body = document.getElementById("dialog-body");
      if (body) body.innerHTML = "";
    });
  });

  // An answer to a poller that is gone (the dialog was closed meanwhile)
  // is not shown: it would open the dialog again.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var elt = e.detail.requestConfig && e.detail.requestConfig.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-live") && !document.body.contains(elt)) e.detail.shouldSwap = false;
  });

  document.addEventListener("htmx:afterSettle", function (e) {
    localizeTimes(e.target);
    var d = dialog();
    if (d && e.target && e.target.id === "dialog-body") {
      if (!d.open) d.showModal();
      var first = d.querySelector(".close");
      if (first && !d.contains(document.activeElement)) first.focus();
      var id = d.querySelector("code");
      if (id) setOpenParam("/jobs/" + id.textContent);
    }
  });

  document.documentElement.classList.add("js");

  document.addEventListener("click", function (e) {
    var t = e.target;
    var toggle = t.closest(".menu-toggle");
    if (toggle) {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.closest("header").classList.toggle("menu-open", open);
      return;
    }
    if (t.closest("[data-close-dialog]")) {
      var d = dialog();
      if (d) d.close();
      return;
    }
    if (t.closest("a, button, input, select, textarea, label, summary")) return;
    var row = t.closest("tr[data-open]");
    if (row) { openDialog(row.dataset.open); return; }
    row = t.closest("tr[data-href]");
    if (row) window.location.href = row.dataset.href;
  });

  // Pickers keep every pick: a ticked search result becomes a chip above
  // the search, and stays when the next search replaces the results.
  function pick(box) {
    var p = box.closest("[data-picker]");
    var chips = p && p.querySelector(".chips");
    if (!chips) return;
    var option = box.closest("label");
    var chip = document.createElement("label");
    chip.className = "chip";
    chip.appendChild(box);
    chip.appendChild(document.createTextNode(" " + ((option && option.dataset.chip) || box.value)));
    chips.appendChild(chip);
    if (option) option.remove();
    var search = p.querySelector("input[type=search]");
    if (search) search.focus();
  }

  // dropPicked removes from fresh results what is already a chip.
  function dropPicked(results) {
    var p = results.closest && results.closest("[data-picker]");
    if (!p) return;
    var chosen = {};
    p.querySelectorAll(".chips input").forEach(function (el) { chosen[el.value] = true; });
    results.querySelectorAll("input[type=checkbox]").forEach(function (el) {
      if (chosen[el.value]) el.closest("label").remove();
    });
  }

  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.classList && e.target.classList.contains("picker")) dropPicked(e.target);
  });

  // Filters that apply as soon as they change.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches("[data-picker] .picker input[type=checkbox]") && t.checked) {
      pick(t);
      return;
    }
    if (t.matches("select[data-autosubmit]")) {
      t.form.submit();
    } else if (t.matches("input[data-autosubmit-action]")) {
      var a = document.createElement("input");
      a.type = "hidden"; a.name = "action"; a.value = t.dataset.autosubmitAction;
      t.form.appendChild(a);
      t.form.submit();
    }
  });

  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
  });
})();
