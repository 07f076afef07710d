"""Text of an email message (.eml, message/rfc822) with the standard library's ``email``.

The text is the message's main headers, then its body: the plain part when there is one,
else the HTML part's main content; attachments are listed by name. The title is the
subject. MIME encodings (quoted-printable, base64, RFC 2047 words, charsets) are the
``email`` package's job under its modern policy.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from .extracted import TextBudget
from .webpage import render_html

HEADERS = ("From", "To", "Cc", "Date", "Subject")


def read_eml(path: Path, budget: TextBudget) -> str | None:
    with path.open("rb") as source:
        message = BytesParser(policy=policy.default).parse(source)
    assert isinstance(message, EmailMessage)  # what policy.default builds
    budget.add("\n".join(f"{name}: {message[name]}" for name in HEADERS if message[name]))
    budget.add(_body(message))
    names = [part.get_filename() or "(unnamed)" for part in message.iter_attachments()]
    if names:
        budget.add("Attachments: " + ", ".join(names))
    subject = message["Subject"]
    return (str(subject).strip() or None) if subject else None


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if not isinstance(content, str):
        return ""
    return render_html(content)[1] if part.get_content_subtype() == "html" else content
