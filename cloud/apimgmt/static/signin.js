// The portal's sign-in: send the form to /auth/signin and, once signed in, go to the portal.
// Without script the form still posts (the answer is then shown as JSON).
"use strict";
(function () {
  const form = document.getElementById("signin");
  const status = document.getElementById("signin-status");
  if (!form || !status) { return; }
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Signing in…";
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      if (answer.ok) {
        window.location.assign("/developers");
        return;
      }
      const problem = await answer.json().catch(function () { return {}; });
      status.textContent = problem.detail || (problem.error && problem.error.message) || "Sign-in failed (" + answer.status + ")";
    } catch (err) {
      status.textContent = "The cloud cannot be reached: " + err;
    }
  });
})();
