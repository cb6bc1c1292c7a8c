"""The pages a person sees during an OpenID sign-in: the sign-in form, sign-out, and errors.

Server-rendered, self-contained (inline style, no script, no external resource), every value escaped; served
with a Content-Security-Policy that forbids everything else and any framing (no click-jacking of the form).
"""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "same-origin",  # no-referrer makes Chromium post the sign-in form with Origin: null
}

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2430;margin:0}
main{max-width:24rem;margin:8vh auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #aab;border-radius:4px}
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;border:0;border-radius:4px;background:#2857c5;
color:#fff;cursor:pointer}.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:4px}
.note{color:#555;font-size:.9rem}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def signin_page(
    *, action: str, params: dict[str, str], client_name: str, tenant: str = "", username: str = "", error: str = ""
) -> HTMLResponse:
    """The sign-in form; ``params`` (the authorization request) ride along as hidden fields."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in sorted(params.items()))
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        "<h1>Sign in to Roost</h1>"
        f'<p class="note">{escape(client_name)} asks who you are.</p>{alert}'
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label for="tenant">Tenant</label>'
        f'<input id="tenant" name="tenant" autocomplete="organization" required value="{escape(tenant)}">'
        '<label for="username">Username</label>'
        f'<input id="username" name="username" autocomplete="username" required value="{escape(username)}">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    return _page("Sign in to Roost", body, 401 if error else 200)


def error_page(status: int, message: str, *, title: str = "Sign-in is not possible") -> HTMLResponse:
    """An error the person can read (the client's request, or the provider, was wrong)."""
    body = f'<h1>{escape(title)}</h1><p class="error" role="alert">{escape(message)}</p>'
    return _page(title, body, status)


def signout_confirm_page(*, action: str, params: dict[str, str]) -> HTMLResponse:
    """Asks before signing out when the request does not prove which application sent it."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in sorted(params.items()))
    body = (
        "<h1>Sign out of Roost?</h1>"
        '<p class="note">Your session and the tokens it gave applications will stop working.</p>'
        f'<form method="post" action="{escape(action)}">{hidden}<button type="submit">Sign out</button></form>'
    )
    return _page("Sign out of Roost", body)


def signed_out_page() -> HTMLResponse:
    """Shown after signing out when no application asked to be returned to."""
    return _page("Signed out", '<h1>You are signed out</h1><p class="note">You may close this page.</p>')
