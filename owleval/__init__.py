"""OwlEval: human-graded evaluation of multimodal chat models on open-ended questions about images.
Flow: data set -> models (generate) -> study (people) and judge -> report; ``import owleval`` stays light."""

from owleval.errors import OwlEvalError
from owleval.questions import ABILITIES, GRADES, Question, load_image, load_questions, questions_dataset, questions_frame

__version__ = "0.1.0"

__all__ = [
    "ABILITIES",
    "GRADES",
    "OwlEvalError",
    "Question",
    "__version__",
    "load_image",
    "load_questions",
    "questions_dataset",
    "questions_frame",
]
