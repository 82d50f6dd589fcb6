"""Tiny causal LMs built on the spot (no hub): a BPE tokenizer trained in ~1 s and a 2-layer Llama or Qwen2.

Shared by the policy, augmentation and training tests. Outputs are random-ish text, but deterministic.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TRAINING_TEXT = (
    "breast cancer statin cholesterol vitamin bone density green tea asthma children diet fruit vegetables "
    "keywords explanation answer think query document abstract summary expand the text with related terms "
    "system user assistant you are a helpful assistant write an augmentation for retrieval"
).split()


def build_tokenizer(vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    lines = [" ".join(TRAINING_TEXT[i:] + TRAINING_TEXT[:i]) for i in range(len(TRAINING_TEXT))]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token=None,
        padding_side="left",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_llama(
    folder: str | Path, seed: int = 0, hidden: int = 32, layers: int = 2, tokenizer=None, **config
) -> Path:
    """Save a tiny random Llama + tokenizer (default: :func:`build_tokenizer`) to ``folder`` (a normal HF
    model folder) and return it; ``config`` adds LlamaConfig fields (e.g. ``attention_bias=True``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _build_tiny(folder, LlamaConfig, LlamaForCausalLM, seed, hidden, layers, tokenizer, **config)


def build_tiny_qwen2(folder: str | Path, seed: int = 0, **config) -> Path:
    """Save a tiny random Qwen2 (Llama's decoder layer with biased q/k/v projections) + tokenizer to
    ``folder``; ``config`` adds Qwen2Config fields (e.g. ``use_sliding_window=True``)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _build_tiny(folder, Qwen2Config, Qwen2ForCausalLM, seed, **config)


def _build_tiny(folder, config_class, model_class, seed=0, hidden=32, layers=2, tokenizer=None, **config) -> Path:
    import torch

    folder = Path(folder)
    tokenizer = tokenizer or build_tokenizer()
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        **config,
    )
    model = model_class(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_word_tokenizer():
    """A word-level tokenizer over TRAINING_TEXT: every generated token is a whole word, so a random model's
    rollouts contain corpus words and retrieval rewards differ between rollouts (what RL tests need)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(TRAINING_TEXT))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, "[UNK]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="[UNK]",
        bos_token=None,
        padding_side="left",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_word_llama(folder: str | Path, seed: int = 0) -> Path:
    """Like :func:`build_tiny_llama`, with :func:`build_word_tokenizer`."""
    return build_tiny_llama(folder, seed=seed, tokenizer=build_word_tokenizer())
