"""Reading language-model answers: the canonical interpretation of a sensor answer, a label description,
and the one re-ask sent after an answer that could not be read."""

from __future__ import annotations

from common.language.llm.scheduling import Completion
from common.language.prompts import (
    ANSWER_BEGIN,
    ANSWER_END,
    STANDARD_CATEGORIES,
    AnswerFormatError,
    format_interpretation,
    parse_sensor_answer,
)

# A label description shorter than this (characters) is treated as a failed answer.
MIN_LABEL_DESCRIPTION_CHARS = 40
# A previous answer quoted back in the format re-ask is cut to this length, to fit small context windows.
_MAX_QUOTED_ANSWER_CHARS = 1200


def render_format_reask(original_prompt: str, answer: str, problem: str) -> str:
    """The one re-ask after an unreadable answer: the task again, what was wrong, and the exact format."""
    quoted = answer.strip()
    if len(quoted) > _MAX_QUOTED_ANSWER_CHARS:
        quoted = quoted[:_MAX_QUOTED_ANSWER_CHARS] + " ..."
    lines = "\n".join(f"{category}: <phrase>" for category in STANDARD_CATEGORIES)
    return (
        f"{original_prompt}\n\n"
        f"Your previous answer could not be read ({problem}). It was:\n{quoted or '(empty)'}\n\n"
        "Answer again with the final answer only, exactly in this form:\n"
        f"{ANSWER_BEGIN}\n{lines}\n{ANSWER_END}"
    )


def render_label_reask(original_prompt: str, answer: str, problem: str) -> str:
    """The one re-ask after an unusable label description (the answer itself is not quoted back)."""
    return f"{original_prompt}\n\nYour previous answer was unusable ({problem}). Write the paragraph now."


def clean_label_description(completion: Completion) -> tuple[str | None, str | None]:
    if not completion.ok:
        return None, completion.error
    text = " ".join((completion.text or "").split()).strip(" \"'")
    if len(text) < MIN_LABEL_DESCRIPTION_CHARS:
        return None, f"description shorter than {MIN_LABEL_DESCRIPTION_CHARS} characters"
    return text, None


def parse_sensor_completion(completion: Completion) -> tuple[str | None, str | None]:
    """(canonical interpretation, None); (None, why) when the request failed or the answer is unreadable."""
    if not completion.ok:
        return None, completion.error
    try:
        return format_interpretation(parse_sensor_answer(completion.text or "")), None
    except AnswerFormatError as error:
        return None, str(error)
