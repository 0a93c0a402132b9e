"""The VST model side of curation: a tiny offline Qwen2.5-VL, the streaming protocol (spec section 4),
the judge that scores chains with a model, and a minimal SFT trainer."""
