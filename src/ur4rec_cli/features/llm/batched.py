"""The local backend's engine: the GGUF loaded by transformers and decoded in left-padded batches.

A 135M model decoding one prompt reads every weight for one token; a batch of prompts reads them
once per step for all. The GGUF is dequantized by transformers at the first load (``gguf`` and
``accelerate`` packages, ``ur4rec[local]``) and saved once as safetensors under
``<home>/models/<file>-<sha12>-hf/`` (temp folder, then rename), which later runs load in seconds.

Prompts are sorted by token length before batching (little padding) and the answers are handed
back in prompt order. Sampling is seeded per prompt (Gumbel-max noise drawn from a generator
seeded by a hash of the prompt's messages), so an answer depends on its prompt only: the same in
a batch of 128 as alone, and on a rerun. Temperature 0 is greedy decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ur4rec_cli.errors import ConfigError, LLMError, is_out_of_memory

if TYPE_CHECKING:
    from ur4rec_cli.features.llm.prompts import Prompt

INSTALL_HINT = "the local backend needs the gguf and accelerate packages: pip install 'ur4rec[local]'"

# llama.cpp's default samplers for chat completions, so that temperature means what it meant there.
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05
# Auto batch size: prompts per batch, and a cap on padded tokens (prompt + answer) per batch.
AUTO_BATCH = {"cpu": 128, "cuda": 512, "mps": 64}
TOKENS_PER_BATCH = {"cpu": 48_000, "cuda": 400_000, "mps": 32_000}
# A batch's shortest prompt (with its answer) is never padded past this many times its own length.
PAD_RATIO = 1.5


def local_packages_missing() -> bool:
    """True when gguf or accelerate (the `local` extra, which the local backend needs) is not installed."""
    import importlib.util

    return importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None


@dataclass
class Answer:
    content: str
    input_tokens: int
    output_tokens: int
    seconds: float  # this answer's share of its batch's wall time
    batch: int  # size of the batch it was decoded in


def prompt_seed(prompt: "Prompt", seed: int) -> int:
    """The sampling seed of one prompt: its messages and the run's seed, nothing else."""
    blob = json.dumps([seed, prompt.messages()], sort_keys=True, ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file and what identifies its answers."""

    path: Path
    sha256: str
    default: bool

    @property
    def label(self) -> str:
        return f"{self.path.name}@sha256:{self.sha256[:12]}"


def hf_folder(home: Path, model: "LocalModel") -> Path:
    return Path(home) / "models" / f"{model.path.stem}-{model.sha256[:12]}-hf"


class BatchedGenerator:
    """One loaded model; ``answer`` decodes a list of prompts in length-sorted batches."""

    def __init__(
        self,
        model: "LocalModel",
        *,
        home: Path,
        device: str,
        threads: int | None,
        max_tokens: int,
        temperature: float,
        seed: int,
        batch_size: int | None,
        dtype: str = "auto",
    ) -> None:
        if local_packages_missing():
            raise ConfigError(INSTALL_HINT)
        import torch

        from ur4rec_cli.devices import resolve_device

        self.device = resolve_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.dtype = _pick_dtype(torch, self.device, dtype)
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        kind = self.device.type
        self.batch_size = batch_size or AUTO_BATCH.get(kind, 64)
        self.tokens_per_batch = None if batch_size else TOKENS_PER_BATCH.get(kind, 32_000)
        t0 = time.perf_counter()
        self.tokenizer, self.model, self.loaded_from = _load(model, Path(home), self.device, self.dtype)
        self.load_seconds = time.perf_counter() - t0
        self.eos_ids, self.pad_id = _stop_tokens(self.tokenizer)

    @property
    def label(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        size = f"batch {self.batch_size}" + (" (auto)" if self.tokens_per_batch else "")
        return f"transformers, {self.device}, {dtype}, {size}"

    def encode(self, prompts: list["Prompt"]) -> list[list[int]]:
        """Token ids of each prompt in the GGUF's own chat template, generation prompt added."""
        out = []
        for p in prompts:
            ids = self.tokenizer.apply_chat_template(p.messages(), add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):  # newer transformers return a BatchEncoding
                ids = ids["input_ids"]
            out.append(list(ids))
        return out

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Prompt indices in length order, cut into batches: by count, by padded tokens (auto size),
        and where the prompt length jumps (an 80-token prompt padded to 400 would cost 5x its own)."""
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            longest = lengths[i]  # sorted: the newest is the longest of the batch
            full = len(cur) >= self.batch_size
            too_many_tokens = self.tokens_per_batch and (len(cur) + 1) * (longest + self.max_tokens) > self.tokens_per_batch
            jump = cur and longest + self.max_tokens > PAD_RATIO * (lengths[cur[0]] + self.max_tokens)
            if cur and (full or too_many_tokens or jump):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def answer(self, prompts: list["Prompt"], on_batch: Callable[[list[int], list[Answer]], None] | None = None) -> list[Answer]:
        """Answers in prompt order; ``on_batch(indices, answers)`` runs as each batch finishes."""
        ids = self.encode(prompts)
        results: list[Answer | None] = [None] * len(prompts)
        for batch in self.batches([len(x) for x in ids]):
            answers = self._decode([ids[i] for i in batch], [prompt_seed(prompts[i], self.seed) for i in batch])
            for i, a in zip(batch, answers):
                results[i] = a
            if on_batch:
                on_batch(batch, answers)
        return [a for a in results if a is not None]

    def _decode(self, ids: list[list[int]], seeds: list[int]) -> list[Answer]:
        import torch

        t0 = time.perf_counter()
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):  # left padding: every prompt ends where decoding starts
            input_ids[r, width - len(x) :] = torch.tensor(x)
            mask[r, width - len(x) :] = 1
        processors = _processors(self.temperature, seeds, width)
        from transformers import GenerationConfig

        config = GenerationConfig(
            max_new_tokens=self.max_tokens, do_sample=False, num_beams=1,
            eos_token_id=self.eos_ids, pad_token_id=self.pad_id, bos_token_id=None,
        )  # fmt: skip
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                    generation_config=config, logits_processor=processors,
                )  # fmt: skip
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise LLMError(
                f"out of memory decoding {len(ids)} prompts of up to {width} tokens on {self.device} "
                f"({' '.join(str(exc).split())[:120]}): lower --batch-size; every answer so far is cached"
            ) from None
        new = out[:, width:].tolist()
        share = (time.perf_counter() - t0) / len(ids)
        answers = []
        for x, row in zip(ids, new):
            stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            tokens = row if stop is None else row[:stop]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            if stop is None and len(row) >= self.max_tokens:
                from ur4rec_cli.features.llm.cleanup import whole_sentences

                text = whole_sentences(text)
            answers.append(Answer(text, len(x), len(tokens), share, len(ids)))
        return answers


def _pick_dtype(torch: Any, device: Any, dtype: str) -> Any:
    """bf16 on CUDA and on CPUs with native bf16 matrix units (AMX / AVX512-BF16), else fp32."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype != "auto":
        raise ConfigError(f"llm.local_dtype must be auto, float32 or bfloat16, not {dtype!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_bf16_units():
        return torch.bfloat16
    return torch.float32


def _cpu_has_bf16_units() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _load(model: "LocalModel", home: Path, device: Any, dtype: Any) -> tuple[Any, Any, str]:
    """(tokenizer, model, where from): the safetensors cache when it exists, else the GGUF (then cached)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ur4rec_cli.console import third_party_quiet

    folder = hf_folder(home, model)
    source = "cache"
    try:
        with third_party_quiet():
            if not (folder / "config.json").is_file():
                source = "gguf"
                _convert(model, folder)
            tok = AutoTokenizer.from_pretrained(str(folder))
            net = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise LLMError(f"cannot load {model.path} with transformers: {' '.join(str(exc).split())[:300]}") from None
    net.to(device).eval()
    return tok, net, source


def _convert(model: "LocalModel", folder: Path) -> None:
    """Dequantize the GGUF once and save it as safetensors (temp folder, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-hf-", dir=folder.parent))
    try:
        kw = {"gguf_file": model.path.name}
        tok = AutoTokenizer.from_pretrained(str(model.path.parent), **kw)
        net = AutoModelForCausalLM.from_pretrained(str(model.path.parent), dtype=torch.float32, **kw)
        tok.save_pretrained(str(tmp))
        # save_pretrained refuses a model loaded from a GGUF ("not serializable"): the weights are
        # plain tensors once dequantized, so the config (without the GGUF marker) and a safetensors
        # file of the state dict are written directly.
        config = net.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(str(tmp))
        from safetensors.torch import save_model

        save_model(net, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "source.json").write_text(json.dumps({"gguf": model.path.name, "sha256": model.sha256}) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process got there first: theirs is the same conversion
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_tokens(tokenizer: Any) -> tuple[list[int], int]:
    """The ids that end an answer, and the padding id.

    The end-of-turn token is read off the chat template itself (the token that closes an assistant
    message), so a converter that swapped eos and bos cannot make answers run to max_tokens.
    """
    stops: list[int] = []
    try:
        probe = tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "zzzz"}], tokenize=False)
        tail = probe.split("zzzz", 1)[1]
        first = tokenizer(tail, add_special_tokens=False)["input_ids"]
        if first and first[0] in set(tokenizer.all_special_ids):
            stops.append(int(first[0]))
    except (ValueError, IndexError, TypeError, KeyError):
        pass
    eos = tokenizer.eos_token_id
    if eos is not None and eos != tokenizer.bos_token_id and eos not in stops:
        stops.append(int(eos))
    if not stops:
        raise LLMError("the model's tokenizer names no end-of-turn token: answers would never stop")
    pad = tokenizer.pad_token_id
    return stops, int(pad if pad is not None else stops[0])


def _processors(temperature: float, seeds: list[int], prompt_width: int) -> Any:
    """Greedy decoding at temperature 0; otherwise one seeded sampler per row (see ``_SeededSampler``)."""
    from transformers import LogitsProcessorList

    return LogitsProcessorList([] if temperature <= 0 else [_SeededSampler(temperature, seeds, prompt_width)])


class _SeededSampler:
    """llama.cpp's chain (top-k 40, top-p 0.95, min-p 0.05 on the raw distribution, then temperature),
    sampled by Gumbel-max over the surviving candidates. The noise of row r at step t comes from a
    generator seeded by (seed_r, t), so a row's draw does not depend on its batch. Returns scores
    that are 0 at the drawn token and -inf elsewhere, which the greedy step then picks.

    Sorting the whole vocabulary per row (transformers' own top-p warper) cost as much as the
    model on a CPU; the filters here work on the 40 top-k candidates only.
    """

    def __init__(self, temperature: float, seeds: list[int], prompt_width: int) -> None:
        self.temperature, self.seeds, self.width = temperature, seeds, prompt_width

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.width
        top, idx = scores.float().topk(min(TOP_K, scores.shape[-1]), dim=-1)  # sorted, descending
        probs = top.softmax(-1)
        keep = (probs.cumsum(-1) - probs) < TOP_P  # top-p: the smallest prefix reaching TOP_P
        keep &= probs >= MIN_P * probs[:, :1]  # min-p, relative to the most likely token
        keep[:, 0] = True
        u = torch.empty(top.shape, dtype=torch.float32)
        g = torch.Generator()
        for r, s in enumerate(self.seeds):
            g.manual_seed((s + 1_000_003 * step) & ((1 << 63) - 1))
            u[r].uniform_(1e-10, 1.0, generator=g)
        gumbel = -torch.log(-torch.log(u)).to(scores.device)
        choice = (top / self.temperature + gumbel).masked_fill(~keep, float("-inf")).argmax(-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, idx.gather(-1, choice), 0.0)
