// Light or dark: the person's choice if they made one, else the system's.
// A classic script loaded in <head>, so the chosen theme is set before the first paint.
(function () {
  "use strict";
  var KEY = "chatter.theme";
  var root = document.documentElement;

  function stored() {
    try {
      var value = localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : null;
    } catch (error) {
      return null; // storage disabled: follow the system
    }
  }

  function systemTheme() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches
      ? "dark"
      : "light";
  }

  function current() {
    return stored() || systemTheme();
  }

  function apply(theme) {
    root.dataset.theme = theme;
    var button = document.getElementById("theme-toggle");
    if (button) {
      var other = theme === "dark" ? "light" : "dark";
      button.setAttribute("aria-label", "Switch to " + other + " theme");
      button.title = "Switch to " + other + " theme";
    }
  }

  apply(current());

  document.addEventListener("DOMContentLoaded", function () {
    apply(current());
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var next = current() === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(KEY, next);
      } catch (error) {
        // not remembered, but still applied
      }
      apply(next);
    });
  });

  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
      if (!stored()) apply(systemTheme());
    });
  }
})();
