/* AEGIS back-office: small progressive enhancements (no framework, no CDN). */
"use strict";

// Copy buttons: <button data-copy-target="element-id">.
document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy-target]");
    if (!button) {
        return;
    }
    const source = document.getElementById(button.dataset.copyTarget);
    if (!source) {
        return;
    }
    const text = "value" in source ? source.value : source.textContent;
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    function done() {
        button.textContent = "Copied";
        button.classList.add("aegis-copied");
        window.setTimeout(function () {
            button.textContent = label;
            button.classList.remove("aegis-copied");
        }, 2000);
    }
    function fallback() {
        source.focus();
        source.select();
        document.execCommand("copy");
        done();
    }
    if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, fallback);
    } else {
        fallback();
    }
});

// Select the whole token on focus, so a manual Ctrl+C copies all of it.
document.addEventListener("focusin", function (event) {
    if (event.target.matches("textarea[data-select-on-focus], input[data-select-on-focus]")) {
        event.target.select();
    }
});

// Issue form: a perpetual license has no term; dim the term fields while it is chosen.
document.addEventListener("DOMContentLoaded", function () {
    const radios = document.querySelectorAll("input[name='license_type']");
    if (!radios.length) {
        return;
    }
    const termRows = document.querySelectorAll(".field-duration_days, .field-expires_on");
    function update() {
        const checked = document.querySelector("input[name='license_type']:checked");
        const perpetual = checked && checked.value === "perpetual";
        termRows.forEach(function (row) {
            row.classList.toggle("aegis-field-disabled", perpetual);
            row.querySelectorAll("input").forEach(function (input) {
                input.disabled = perpetual;
            });
        });
    }
    radios.forEach(function (radio) {
        radio.addEventListener("change", update);
    });
    update();
});
