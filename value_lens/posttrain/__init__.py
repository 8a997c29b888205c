"""Post-training recipes (LoRA DPO and SFT on trl and peft, the optional extra
``value_lens[train]``) that return merged HF models to compare with :func:`value_lens.load_model`.
Builds on core and data only; trl, peft and datasets are imported when a recipe runs."""

from value_lens.posttrain.recipes import dpo, sft
from value_lens.posttrain.settings import DPOSettings, LoraSettings, SFTSettings

__all__ = ["DPOSettings", "LoraSettings", "SFTSettings", "dpo", "sft"]
