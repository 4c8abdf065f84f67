"""Import Hugging Face transformer checkpoints (``config.json`` + safetensors) as NumPy weights.

The compiler and the reference layers (:mod:`sim_models.float_layers`,
:mod:`sim_models.transformer`) take their weights from the dataclasses defined here. Two
families are supported:

* **BERT** encoders (``BertModel`` and the ``BertFor*`` heads, e.g. all-MiniLM-L6-v2): the
  embeddings and every encoder layer; tensor names ``encoder.layer.N.attention.self.query
  .weight`` etc., with or without a ``bert.`` prefix. Only ``hidden_act = "gelu"`` (the erf
  form the ``GELU`` instruction computes) and absolute position embeddings.
* **Llama** decoders (``LlamaForCausalLM``, ``LlamaModel``): ``model.layers.N.self_attn
  .{q,k,v,o}_proj.weight``, ``mlp.{gate,up,down}_proj.weight``, ``input_layernorm`` and
  ``post_attention_layernorm``, grouped-query attention (``num_key_value_heads``), plain RoPE
  (``rope_theta``, or ``rope_parameters`` of type ``default``; no ``rope_scaling``), no
  attention/MLP biases, ``hidden_act = "silu"``.

Weights are returned as float32 arrays in the Hugging Face orientation: a linear layer's
``weight`` is ``[out_features, in_features]`` and computes ``y = x @ weight.T + bias``.
Nothing assumes a size is a multiple of anything (the compiler pads to the lane count later).

Tensors are read with ``safetensors.safe_open(..., framework="np")``, one tensor at a time
(no torch). NumPy has no bfloat16, so ``BF16`` tensors, the usual dtype of Llama checkpoints,
are read from the file's raw bytes instead (the safetensors header gives their offsets) and
widened exactly to float32. Sharded checkpoints (``model.safetensors.index.json``) work too.

Every problem (missing file, unsupported architecture or option, missing tensor, wrong shape or
dtype) raises :class:`ModelImportError` with a message naming the file and the architecture,
tensor, expected shape or option at fault.

:func:`write_random_llama_checkpoint` writes a small random Llama checkpoint of any size (for
tests and demos; GQA and odd sizes such as hidden 72, 6 heads, 2 KV heads, FFN 200).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

__all__ = [
    "BERT_ARCHITECTURES",
    "LLAMA_ARCHITECTURES",
    "BertConfig",
    "BertEmbeddings",
    "BertLayerWeights",
    "BertModelWeights",
    "LlamaConfig",
    "LlamaLayerWeights",
    "LlamaModelWeights",
    "ModelImportError",
    "load_bert",
    "load_checkpoint",
    "load_llama",
    "write_random_bert_checkpoint",
    "write_random_llama_checkpoint",
]

#: ``architectures`` entries read as a BERT encoder (only the encoder is imported).
BERT_ARCHITECTURES = frozenset({
    "BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification",
    "BertForTokenClassification", "BertForQuestionAnswering", "BertForMultipleChoice",
    "BertForNextSentencePrediction", "BertLMHeadModel",
})
#: ``architectures`` entries read as a Llama decoder.
LLAMA_ARCHITECTURES = frozenset({"LlamaForCausalLM", "LlamaModel"})

_FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


class ModelImportError(Exception):
    """A checkpoint cannot be imported: the message names the file and what is wrong.

    Attributes
    ----------
    path : pathlib.Path or None
        The file (or checkpoint directory) at fault.
    tensor : str or None
        The tensor name, when one tensor is at fault.
    """

    def __init__(self, message: str, path: PathLike | str | None = None,
                 tensor: str | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.tensor = tensor


# --------------------------------------------------------------------------------------------
# Weight containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    """The BERT hyper-parameters the layers need (from ``config.json``)."""

    hidden_size: int
    num_heads: int
    intermediate_size: int
    num_layers: int
    layer_norm_eps: float
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int

    @property
    def head_dim(self) -> int:
        """Per-head width ``hidden_size / num_heads``."""
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class BertEmbeddings:
    """BERT input embeddings: word, position, token type tables and their LayerNorm."""

    word: np.ndarray  #: [vocab, hidden]
    position: np.ndarray  #: [max_positions, hidden]
    token_type: np.ndarray  #: [type_vocab, hidden]
    ln_weight: np.ndarray  #: [hidden]
    ln_bias: np.ndarray  #: [hidden]


@dataclass(frozen=True)
class BertLayerWeights:
    """One post-LN BERT encoder layer; linear weights are ``[out, in]``."""

    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray  #: attention output projection
    bo: np.ndarray
    ln1_weight: np.ndarray  #: LayerNorm after attention + residual
    ln1_bias: np.ndarray
    w_in: np.ndarray  #: FFN up projection (``intermediate.dense``), [ffn, hidden]
    b_in: np.ndarray
    w_out: np.ndarray  #: FFN down projection (``output.dense``), [hidden, ffn]
    b_out: np.ndarray
    ln2_weight: np.ndarray  #: LayerNorm after FFN + residual
    ln2_bias: np.ndarray


@dataclass(frozen=True)
class BertModelWeights:
    """An imported BERT encoder."""

    config: BertConfig
    embeddings: BertEmbeddings
    layers: dict[int, BertLayerWeights]  #: layer index -> weights (the requested layers)
    source: Path


@dataclass(frozen=True)
class LlamaConfig:
    """The Llama hyper-parameters the layers need (from ``config.json``)."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    num_layers: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool

    @property
    def kv_groups(self) -> int:
        """Query heads per KV head (``num_heads / num_kv_heads``)."""
        return self.num_heads // self.num_kv_heads


@dataclass(frozen=True)
class LlamaLayerWeights:
    """One pre-norm Llama decoder layer; linear weights are ``[out, in]``, no biases."""

    wq: np.ndarray  #: [num_heads * head_dim, hidden]
    wk: np.ndarray  #: [num_kv_heads * head_dim, hidden]
    wv: np.ndarray  #: [num_kv_heads * head_dim, hidden]
    wo: np.ndarray  #: [hidden, num_heads * head_dim]
    w_gate: np.ndarray  #: [ffn, hidden]
    w_up: np.ndarray  #: [ffn, hidden]
    w_down: np.ndarray  #: [hidden, ffn]
    attn_norm: np.ndarray  #: ``input_layernorm.weight``
    ffn_norm: np.ndarray  #: ``post_attention_layernorm.weight``


@dataclass(frozen=True)
class LlamaModelWeights:
    """An imported Llama decoder."""

    config: LlamaConfig
    embed_tokens: np.ndarray  #: [vocab, hidden]
    layers: dict[int, LlamaLayerWeights]  #: layer index -> weights (the requested layers)
    norm: np.ndarray  #: final RMSNorm weight
    lm_head: np.ndarray | None  #: [vocab, hidden]; None when tied to ``embed_tokens``
    source: Path


# --------------------------------------------------------------------------------------------
# Reading tensors
# --------------------------------------------------------------------------------------------


def _read_raw_bf16(file: Path, name: str) -> np.ndarray:
    """A BF16 tensor widened to float32, read from the raw bytes (NumPy has no bfloat16)."""
    with open(file, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        info = header[name]
        start, end = info["data_offsets"]
        f.seek(8 + header_len + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    # bfloat16 is the top half of a float32: widening is exact
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


class _TensorSource:
    """Name -> tensor lookup over one ``model.safetensors`` or an index of shards."""

    def __init__(self, directory: Path, arch: str):
        self.directory = directory
        self.arch = arch
        index = directory / "model.safetensors.index.json"
        single = directory / "model.safetensors"
        self.files: dict[str, Path] = {}
        if single.is_file():
            self._add_file(single)
        elif index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ModelImportError(f"{index}: not a safetensors index ({e})", index) from e
            for shard in sorted(set(weight_map.values())):
                self._add_file(directory / shard)
        else:
            raise ModelImportError(
                f"{directory}: no model.safetensors (or model.safetensors.index.json) found; "
                "only safetensors checkpoints are supported", directory)

    def _add_file(self, file: Path) -> None:
        if not file.is_file():
            raise ModelImportError(f"{file}: safetensors file listed in the index is missing",
                                   file)
        try:
            with safe_open(file, framework="np") as f:
                for key in f.keys():
                    self.files[key] = file
        except Exception as e:  # safetensors raises its own SafetensorError for bad files
            raise ModelImportError(f"{file}: cannot read safetensors file ({e})", file) from e

    def __contains__(self, name: str) -> bool:
        return name in self.files

    @property
    def where(self) -> Path:
        """The file to name in a message about a tensor that is missing."""
        files = sorted(set(self.files.values()))
        return files[0] if len(files) == 1 else self.directory

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32, checked against ``shape``."""
        file = self.files.get(name)
        if file is None:
            raise ModelImportError(
                f"{self.where}: missing tensor '{name}' (expected shape {list(shape)}) for "
                f"{self.arch}", self.where, name)
        with safe_open(file, framework="np") as f:
            sl = f.get_slice(name)
            dtype = sl.get_dtype()
            got = tuple(sl.get_shape())
            if got != tuple(shape):
                raise ModelImportError(
                    f"{file}: tensor '{name}' has shape {list(got)}, expected {list(shape)} "
                    f"for {self.arch}", file, name)
            if dtype in _FLOAT_DTYPES:
                arr = f.get_tensor(name)
            elif dtype == "BF16":
                arr = _read_raw_bf16(file, name)
            else:
                raise ModelImportError(
                    f"{file}: tensor '{name}' has dtype {dtype}; only F32, F16, BF16 and F64 "
                    "weights can be imported", file, name)
        return np.ascontiguousarray(arr, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------


def _read_config(directory: Path) -> tuple[dict, Path]:
    directory = Path(directory)
    if directory.is_file():
        raise ModelImportError(f"{directory}: a file, not a checkpoint directory (give the "
                               f"directory holding config.json)", directory)
    if not directory.is_dir():
        raise ModelImportError(f"{directory}: checkpoint directory does not exist", directory)
    path = directory / "config.json"
    if not path.is_file():
        raise ModelImportError(f"{path}: config.json not found", path)
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelImportError(f"{path}: not valid JSON ({e})", path) from e
    if not isinstance(cfg, dict):
        raise ModelImportError(f"{path}: expected a JSON object", path)
    return cfg, path


def _architecture(cfg: dict) -> str:
    archs = cfg.get("architectures") or []
    if archs:
        return str(archs[0])
    return {"bert": "BertModel", "llama": "LlamaForCausalLM"}.get(cfg.get("model_type"),
                                                                 f"model_type={cfg.get('model_type')!r}")


def _field(cfg: dict, path: Path, arch: str, key: str, kind=int, default=None):
    if key not in cfg:
        if default is not None:
            return default
        raise ModelImportError(f"{path}: {arch} config has no '{key}'", path)
    try:
        value = kind(cfg[key])
    except (TypeError, ValueError) as e:
        raise ModelImportError(f"{path}: '{key}' = {cfg[key]!r} is not a valid {kind.__name__}",
                               path) from e
    if kind is int and value <= 0:
        raise ModelImportError(f"{path}: '{key}' must be positive, got {value}", path)
    return value


def _unsupported(path: Path, arch: str, what: str) -> ModelImportError:
    return ModelImportError(f"{path}: {arch}: {what} is not supported", path)


def _bert_config(cfg: dict, path: Path, arch: str) -> BertConfig:
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise _unsupported(path, arch, f"hidden_act {act!r} (only 'gelu', the erf form)")
    pos = cfg.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise _unsupported(path, arch, f"position_embedding_type {pos!r}")
    c = BertConfig(
        hidden_size=_field(cfg, path, arch, "hidden_size"),
        num_heads=_field(cfg, path, arch, "num_attention_heads"),
        intermediate_size=_field(cfg, path, arch, "intermediate_size"),
        num_layers=_field(cfg, path, arch, "num_hidden_layers"),
        layer_norm_eps=_field(cfg, path, arch, "layer_norm_eps", float, 1e-12),
        vocab_size=_field(cfg, path, arch, "vocab_size"),
        max_position_embeddings=_field(cfg, path, arch, "max_position_embeddings", int, 512),
        type_vocab_size=_field(cfg, path, arch, "type_vocab_size", int, 2),
    )
    if c.hidden_size % c.num_heads:
        raise ModelImportError(f"{path}: hidden_size {c.hidden_size} is not a multiple of "
                               f"num_attention_heads {c.num_heads}", path)
    return c


def _llama_config(cfg: dict, path: Path, arch: str) -> LlamaConfig:
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise _unsupported(path, arch, f"hidden_act {act!r} (only 'silu')")
    # transformers >= 5 writes "rope_parameters" (theta and type), older versions
    # "rope_theta" plus an optional "rope_scaling"; only the plain ("default") RoPE is supported
    rope = dict(cfg.get("rope_scaling") or {})
    rope.update(cfg.get("rope_parameters") or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise _unsupported(path, arch, f"RoPE scaling {rope!r} (plain RoPE only)")
    if "rope_theta" in rope and "rope_theta" not in cfg:
        cfg = {**cfg, "rope_theta": rope["rope_theta"]}
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise _unsupported(path, arch, f"{key} = true")
    hidden = _field(cfg, path, arch, "hidden_size")
    heads = _field(cfg, path, arch, "num_attention_heads")
    kv_heads = _field(cfg, path, arch, "num_key_value_heads", int, heads)
    head_dim = cfg.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise ModelImportError(f"{path}: hidden_size {hidden} is not a multiple of "
                                   f"num_attention_heads {heads} and no head_dim is given", path)
        head_dim = hidden // heads
    head_dim = _field({"head_dim": head_dim}, path, arch, "head_dim")
    if heads % kv_heads:
        raise ModelImportError(f"{path}: num_attention_heads {heads} is not a multiple of "
                               f"num_key_value_heads {kv_heads}", path)
    if head_dim % 2:
        raise ModelImportError(f"{path}: head_dim {head_dim} is odd; RoPE needs an even "
                               "head_dim", path)
    return LlamaConfig(
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_field(cfg, path, arch, "intermediate_size"),
        num_layers=_field(cfg, path, arch, "num_hidden_layers"),
        rms_norm_eps=_field(cfg, path, arch, "rms_norm_eps", float, 1e-6),
        rope_theta=_field(cfg, path, arch, "rope_theta", float, 10000.0),
        vocab_size=_field(cfg, path, arch, "vocab_size"),
        max_position_embeddings=_field(cfg, path, arch, "max_position_embeddings", int, 2048),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


def _layer_indices(layers: Iterable[int] | None, n: int, path: Path) -> list[int]:
    if layers is None:
        return list(range(n))
    out = sorted(set(int(i) for i in layers))
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ModelImportError(f"{path}: layer(s) {bad} requested, the model has {n} layers "
                               f"(0..{n - 1})", path)
    return out


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _check_arch(arch: str, path: Path, family: frozenset[str], name: str) -> None:
    if arch not in family:
        raise ModelImportError(
            f"{path}: unsupported architecture {arch!r} for {name}; supported: "
            f"{', '.join(sorted(family))}", path)


def load_bert(directory: PathLike | str, layers: Iterable[int] | None = None) -> BertModelWeights:
    """Load a BERT encoder checkpoint directory (``config.json`` + safetensors).

    Parameters
    ----------
    directory : path
        The checkpoint directory.
    layers : iterable of int, optional
        Encoder layer indices to load (default: all).

    Raises
    ------
    ModelImportError
        Unsupported architecture or option, missing file or tensor, wrong shape or dtype.
    """
    directory = Path(directory)
    cfg, cfg_path = _read_config(directory)
    arch = _architecture(cfg)
    _check_arch(arch, cfg_path, BERT_ARCHITECTURES, "a BERT encoder")
    c = _bert_config(cfg, cfg_path, arch)
    src = _TensorSource(directory, arch)
    probe = "encoder.layer.0.attention.self.query.weight"
    prefix = "bert." if ("bert." + probe) in src and probe not in src else ""
    h, f = c.hidden_size, c.intermediate_size

    def get(name, shape):
        return src.get(prefix + name, shape)

    emb = BertEmbeddings(
        word=get("embeddings.word_embeddings.weight", (c.vocab_size, h)),
        position=get("embeddings.position_embeddings.weight", (c.max_position_embeddings, h)),
        token_type=get("embeddings.token_type_embeddings.weight", (c.type_vocab_size, h)),
        ln_weight=get("embeddings.LayerNorm.weight", (h,)),
        ln_bias=get("embeddings.LayerNorm.bias", (h,)),
    )
    out = {}
    for i in _layer_indices(layers, c.num_layers, cfg_path):
        p = f"encoder.layer.{i}."
        att = p + "attention."
        out[i] = BertLayerWeights(
            wq=get(att + "self.query.weight", (h, h)), bq=get(att + "self.query.bias", (h,)),
            wk=get(att + "self.key.weight", (h, h)), bk=get(att + "self.key.bias", (h,)),
            wv=get(att + "self.value.weight", (h, h)), bv=get(att + "self.value.bias", (h,)),
            wo=get(att + "output.dense.weight", (h, h)),
            bo=get(att + "output.dense.bias", (h,)),
            ln1_weight=get(att + "output.LayerNorm.weight", (h,)),
            ln1_bias=get(att + "output.LayerNorm.bias", (h,)),
            w_in=get(p + "intermediate.dense.weight", (f, h)),
            b_in=get(p + "intermediate.dense.bias", (f,)),
            w_out=get(p + "output.dense.weight", (h, f)),
            b_out=get(p + "output.dense.bias", (h,)),
            ln2_weight=get(p + "output.LayerNorm.weight", (h,)),
            ln2_bias=get(p + "output.LayerNorm.bias", (h,)),
        )
    return BertModelWeights(config=c, embeddings=emb, layers=out, source=directory)


def load_llama(directory: PathLike | str,
               layers: Iterable[int] | None = None) -> LlamaModelWeights:
    """Load a Llama decoder checkpoint directory (``config.json`` + safetensors).

    Parameters
    ----------
    directory : path
        The checkpoint directory.
    layers : iterable of int, optional
        Decoder layer indices to load (default: all).

    Raises
    ------
    ModelImportError
        Unsupported architecture or option, missing file or tensor, wrong shape or dtype.
    """
    directory = Path(directory)
    cfg, cfg_path = _read_config(directory)
    arch = _architecture(cfg)
    _check_arch(arch, cfg_path, LLAMA_ARCHITECTURES, "a Llama decoder")
    c = _llama_config(cfg, cfg_path, arch)
    src = _TensorSource(directory, arch)
    prefix = "model." if arch == "LlamaForCausalLM" or "model.embed_tokens.weight" in src else ""
    h, f, dh = c.hidden_size, c.intermediate_size, c.head_dim
    qd, kvd = c.num_heads * dh, c.num_kv_heads * dh

    def get(name, shape):
        return src.get(prefix + name, shape)

    out = {}
    for i in _layer_indices(layers, c.num_layers, cfg_path):
        p = f"layers.{i}."
        out[i] = LlamaLayerWeights(
            wq=get(p + "self_attn.q_proj.weight", (qd, h)),
            wk=get(p + "self_attn.k_proj.weight", (kvd, h)),
            wv=get(p + "self_attn.v_proj.weight", (kvd, h)),
            wo=get(p + "self_attn.o_proj.weight", (h, qd)),
            w_gate=get(p + "mlp.gate_proj.weight", (f, h)),
            w_up=get(p + "mlp.up_proj.weight", (f, h)),
            w_down=get(p + "mlp.down_proj.weight", (h, f)),
            attn_norm=get(p + "input_layernorm.weight", (h,)),
            ffn_norm=get(p + "post_attention_layernorm.weight", (h,)),
        )
    lm_head = None
    if "lm_head.weight" in src or (arch == "LlamaForCausalLM" and not c.tie_word_embeddings):
        lm_head = src.get("lm_head.weight", (c.vocab_size, h))
    return LlamaModelWeights(
        config=c,
        embed_tokens=get("embed_tokens.weight", (c.vocab_size, h)),
        layers=out,
        norm=get("norm.weight", (h,)),
        lm_head=lm_head,
        source=directory,
    )


def load_checkpoint(directory: PathLike | str, layers: Iterable[int] | None = None
                    ) -> BertModelWeights | LlamaModelWeights:
    """Load a BERT or Llama checkpoint directory, dispatching on ``config.json``.

    Raises
    ------
    ModelImportError
        The architecture is neither family, or :func:`load_bert` / :func:`load_llama` fails.
    """
    cfg, cfg_path = _read_config(Path(directory))
    arch = _architecture(cfg)
    if arch in BERT_ARCHITECTURES:
        return load_bert(directory, layers)
    if arch in LLAMA_ARCHITECTURES:
        return load_llama(directory, layers)
    raise ModelImportError(
        f"{cfg_path}: unsupported architecture {arch!r}; supported: "
        f"{', '.join(sorted(BERT_ARCHITECTURES | LLAMA_ARCHITECTURES))}", cfg_path)


# --------------------------------------------------------------------------------------------
# Random checkpoints
# --------------------------------------------------------------------------------------------


class _RandomWeights:
    """Random float32 tensors for the checkpoint writers: linear weights ``N(0, 1/fan_in)``,
    so that every sublayer contributes about as much as the residual it is added to (the HF
    init, std 0.02, would make a layer's output almost equal to its input, and accuracy tests
    on it meaningless); norm weights ``1 + N(0, 0.1)``; biases ``N(0, 0.1)``; embeddings
    ``N(0, 1)``."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def lin(self, out_f: int, in_f: int) -> np.ndarray:
        return (self.rng.standard_normal((out_f, in_f)) / math.sqrt(in_f)).astype(np.float32)

    def norm(self, n: int) -> np.ndarray:
        return (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def bias(self, n: int) -> np.ndarray:
        return (0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def embed(self, rows: int, n: int) -> np.ndarray:
        return self.rng.standard_normal((rows, n)).astype(np.float32)

    @staticmethod
    def write(directory: PathLike | str, config: dict, tensors: dict) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        return directory


def write_random_llama_checkpoint(
    directory: PathLike | str, *, hidden_size: int = 72, num_heads: int = 6,
    num_kv_heads: int = 2, intermediate_size: int = 200, num_layers: int = 1,
    head_dim: int | None = None, vocab_size: int = 97, max_position_embeddings: int = 256,
    rope_theta: float = 10000.0, rms_norm_eps: float = 1e-5, tie_word_embeddings: bool = False,
    seed: int = 0,
) -> Path:
    """Write a random ``LlamaForCausalLM`` checkpoint (``config.json`` + ``model.safetensors``)
    with the weight statistics of :class:`_RandomWeights`.

    Returns
    -------
    pathlib.Path
        ``directory`` (created if needed).
    """
    r = _RandomWeights(seed)
    dh = head_dim if head_dim is not None else hidden_size // num_heads
    h, f = hidden_size, intermediate_size
    tensors = {"model.embed_tokens.weight": r.embed(vocab_size, h)}
    for i in range(num_layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "self_attn.q_proj.weight": r.lin(num_heads * dh, h),
            p + "self_attn.k_proj.weight": r.lin(num_kv_heads * dh, h),
            p + "self_attn.v_proj.weight": r.lin(num_kv_heads * dh, h),
            p + "self_attn.o_proj.weight": r.lin(h, num_heads * dh),
            p + "mlp.gate_proj.weight": r.lin(f, h),
            p + "mlp.up_proj.weight": r.lin(f, h),
            p + "mlp.down_proj.weight": r.lin(h, f),
            p + "input_layernorm.weight": r.norm(h),
            p + "post_attention_layernorm.weight": r.norm(h),
        })
    tensors["model.norm.weight"] = r.norm(h)
    if not tie_word_embeddings:
        tensors["lm_head.weight"] = r.lin(vocab_size, h)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": h,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "head_dim": dh,
        "intermediate_size": f,
        "num_hidden_layers": num_layers,
        "rms_norm_eps": rms_norm_eps,
        "rope_theta": rope_theta,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "hidden_act": "silu",
        "tie_word_embeddings": tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_scaling": None,
        "torch_dtype": "float32",
    }
    return r.write(directory, config, tensors)


def write_random_bert_checkpoint(
    directory: PathLike | str, *, hidden_size: int = 64, num_heads: int = 4,
    intermediate_size: int = 128, num_layers: int = 1, vocab_size: int = 97,
    max_position_embeddings: int = 128, type_vocab_size: int = 2,
    layer_norm_eps: float = 1e-12, seed: int = 0,
) -> Path:
    """Write a random ``BertModel`` checkpoint (``config.json`` + ``model.safetensors``, the
    tensor names of ``BertModel``) with the weight statistics of :class:`_RandomWeights`.

    Returns
    -------
    pathlib.Path
        ``directory`` (created if needed).
    """
    r = _RandomWeights(seed)
    h, f = hidden_size, intermediate_size
    tensors = {
        "embeddings.word_embeddings.weight": r.embed(vocab_size, h),
        "embeddings.position_embeddings.weight": r.embed(max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": r.embed(type_vocab_size, h),
        "embeddings.LayerNorm.weight": r.norm(h),
        "embeddings.LayerNorm.bias": r.bias(h),
    }
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        for name in ("self.query", "self.key", "self.value", "output.dense"):
            tensors[f"{a}{name}.weight"] = r.lin(h, h)
            tensors[f"{a}{name}.bias"] = r.bias(h)
        tensors.update({
            a + "output.LayerNorm.weight": r.norm(h), a + "output.LayerNorm.bias": r.bias(h),
            p + "intermediate.dense.weight": r.lin(f, h),
            p + "intermediate.dense.bias": r.bias(f),
            p + "output.dense.weight": r.lin(h, f), p + "output.dense.bias": r.bias(h),
            p + "output.LayerNorm.weight": r.norm(h), p + "output.LayerNorm.bias": r.bias(h),
        })
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": h,
        "num_attention_heads": num_heads,
        "intermediate_size": f,
        "num_hidden_layers": num_layers,
        "hidden_act": "gelu",
        "layer_norm_eps": layer_norm_eps,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "type_vocab_size": type_vocab_size,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    return r.write(directory, config, tensors)
