"""The data formats VST's trainers load unchanged (spec: ../shared/spec/vst-formats.md).

    sft.py       SFT records (JSON list of two messages) + the byte-offset seek index   (spec 2)
    rl.py        RL Parquet with exactly VST's columns and types                       (spec 3)
    hf.py        a Hugging Face DatasetDict with explicit features + a dataset card
    question.py  questions, options, ground truths as the rewards parse them
    rewards.py   VST's rule rewards, re-implemented (to prove ground truths survive)
    render.py    an SFT record -> the training conversation VST's loader builds (tokens, labels, frames)
    validate.py  validators for exported SFT and RL files (`vstw validate`)
"""
