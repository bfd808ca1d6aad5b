"""MTurk's QuestionFormAnswers XML, built from the fields a study page posts to
`/mturk/externalSubmit`, exactly as MTurk stored them: an ASCII declaration, MTurk's
namespace, no white space between elements, one Answer per field in posted order (its name
the QuestionIdentifier, its value the FreeText), the reserved fields left out, and every
character outside ASCII written as a numeric character reference."""
from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape

NAMESPACE = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/"
             "QuestionFormAnswers.xsd")
DECLARATION = '<?xml version="1.0" encoding="ASCII"?>'
# Fields MTurk fills in itself; "Any data submitted with a field name of hitId will be ignored".
RESERVED = frozenset({"assignmentId", "hitId", "turkSubmitTo", "workerId"})


def _text(value: str) -> str:
    """Character data for an ASCII document: markup escaped, non-ASCII as `&#N;`.

    Characters XML 1.0 cannot hold at all (most control characters, lone surrogates) are
    dropped: no reference could spell them either."""
    kept = "".join(char for char in value if _allowed(ord(char)))
    return escape(kept).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _allowed(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD \
        or 0x10000 <= code <= 0x10FFFF


def answer_fields(fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The posted fields that are answers: all but the reserved ones, in posted order."""
    return [(name, value) for name, value in fields if name not in RESERVED]


def question_form_answers(fields: Iterable[tuple[str, str]]) -> str:
    """The QuestionFormAnswers document for posted (name, value) fields; with no answer
    field (psiTurk and Dallinger post only reserved ones) an empty QuestionFormAnswers."""
    answers = "".join(
        f"<Answer><QuestionIdentifier>{_text(name)}</QuestionIdentifier>"
        f"<FreeText>{_text(value)}</FreeText></Answer>"
        for name, value in answer_fields(fields))
    return f'{DECLARATION}<QuestionFormAnswers xmlns="{NAMESPACE}">{answers}</QuestionFormAnswers>'
