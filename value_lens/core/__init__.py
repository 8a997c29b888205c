"""Core: load models, the layer convention, chat text with message spans, hook runners, atomic
artifacts, progress bars and seeded batched generation. Imports nothing else from value_lens but
``errors``. Names load their module on first use.

Example:
    >>> from value_lens import core
    >>> core.hook_name(3)
    'blocks.3.hook_resid_post'
"""

from value_lens._lazy import attach

_NAMES = {
    "DEFAULT_MODEL_ID": "value_lens.core.model",
    "load_model": "value_lens.core.model",
    "load_hf": "value_lens.core.model",
    "hook_name": "value_lens.core.conventions",
    "from_hidden_states_index": "value_lens.core.conventions",
    "to_hidden_states_index": "value_lens.core.conventions",
    "format_chat": "value_lens.core.chat",
    "format_prompts": "value_lens.core.prompts",
    "Generation": "value_lens.core.generate",
    "GenerationConfig": "value_lens.core.generate",
    "generate": "value_lens.core.generate",
    "progress": "value_lens.core.progress",
    "read_jsonl": "value_lens.core.io",
}
_MODULES = (
    "chat",
    "conventions",
    "decoding",
    "fastpath",
    "generate",
    "hooks",
    "io",
    "model",
    "progress",
    "prompts",
    "protocols",
)
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, _MODULES)
