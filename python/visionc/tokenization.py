"""GPT-2 byte-level BPE tokenizer on the C core, matching transformers' GPT2TokenizerFast.

The reference is transformers 5.x (GPT2Tokenizer, backed by Hugging Face `tokenizers`): the
same ids for any text, the same decoded strings, the same special-token handling. Two
deliberate differences: an id that names no token raises ValueError (the reference silently
drops it), and only local directories are accepted by ``from_pretrained``.

Loading reads tokenizer.json when present, else vocab.json + merges.txt (parsed in C, so a
malformed file is reported with its name and line), plus tokenizer_config.json,
special_tokens_map.json and added_tokens.json when present.
"""
import json
import logging
import os

import numpy as np

from ._native import _C

__all__ = ["GPT2Tokenizer", "AutoTokenizer"]

logger = logging.getLogger(__name__)

_NAMED_SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _read_json(path, required=False):
    if not os.path.isfile(path):
        if required:
            raise OSError(f"{path} does not exist")
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _token_dict(value):
    """A special-token value from a config ("<s>" or an AddedToken dict) as an added-token dict."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"content": value, "special": True, "normalized": False}
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        d = {k: value[k] for k in ("content", "lstrip", "rstrip", "normalized", "single_word") if k in value}
        d["special"] = True
        d.setdefault("normalized", False)
        return d
    raise ValueError(f"invalid special token {value!r}")


class GPT2Tokenizer:
    """GPT-2 tokenizer; see the module docstring. Build it with ``from_pretrained(dir)``."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file=None, merges_file=None, tokenizer_file=None, *, unk_token="<|endoftext|>",
                 bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token=None, add_prefix_space=False,
                 add_bos_token=False, add_eos_token=False, clean_up_tokenization_spaces=False,
                 clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=False,
                 model_max_length=int(1e30), padding_side="right", truncation_side="right", added_tokens_decoder=None,
                 additional_special_tokens=None, extra_special_tokens=None, name_or_path="", **kwargs):
        special = {"unk_token": unk_token, "bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token}
        for key in ("sep_token", "cls_token", "mask_token"):
            special[key] = kwargs.pop(key, None)
        self._special = {k: _token_dict(v) for k, v in special.items()}
        extras = additional_special_tokens or extra_special_tokens or []
        if isinstance(extras, dict):  # transformers 5 allows {name: token}
            extras = list(extras.values())
        self._extra = [_token_dict(v) for v in extras]
        added = []  # in the order transformers adds them
        post = None
        if tokenizer_file is not None:
            data = _read_json(tokenizer_file, required=True)
            model = data.get("model") or {}
            if model.get("type", "BPE") != "BPE":
                raise NotImplementedError(f"{tokenizer_file}: model type {model.get('type')!r} is not BPE")
            vocab, merges = model.get("vocab"), model.get("merges", [])
            if isinstance(vocab, list):  # some exports list tokens by id
                vocab = {tok[0] if isinstance(tok, list) else tok: i for i, tok in enumerate(vocab)}
            if not isinstance(vocab, dict) or not isinstance(merges, list):
                raise ValueError(f"{tokenizer_file}: model.vocab must be an object and model.merges a list")
            for tok in data.get("added_tokens") or []:
                if not isinstance(tok, dict):
                    raise ValueError(f"{tokenizer_file}: added_tokens entries must be objects")
                added.append(tok)
            post = data.get("post_processor")
            source = tokenizer_file
        elif vocab_file is not None and merges_file is not None:
            vocab, merges, source = os.fspath(vocab_file), os.fspath(merges_file), "merges"
        else:
            raise ValueError("GPT2Tokenizer needs vocab_file and merges_file, or tokenizer_file")
        for key, tok in sorted((added_tokens_decoder or {}).items(), key=lambda kv: int(kv[0])):
            tok = dict(tok) if isinstance(tok, dict) else {"content": str(tok)}
            tok["id"] = int(key)
            added.append(tok)
        known = {t["content"] for t in added}
        # Named and extra special tokens the files did not already declare become special
        # added tokens (they keep their vocabulary id when they have one, like <|endoftext|>).
        for tok in list(self._special.values()) + self._extra:
            if tok is not None and tok["content"] not in known:
                added.append(tok)
                known.add(tok["content"])
        self._tok = _C.BPETokenizer(vocab, merges, added, add_prefix_space=bool(add_prefix_space), source=source)
        self._prefix, self._suffix = self._template(post, add_bos_token, add_eos_token)
        self.add_prefix_space = bool(add_prefix_space)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = bool(
            clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output)
        self.model_max_length = int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.name_or_path = name_or_path
        self._warned_cleanup = False

    def _template(self, post, add_bos, add_eos):
        """Ids put before / after each sequence when add_special_tokens=True."""
        prefix, suffix = [], []
        if post and post.get("type") == "TemplateProcessing":
            seen_a = False
            for item in post.get("single") or []:
                if "Sequence" in item:
                    seen_a = True
                elif "SpecialToken" in item:
                    name = item["SpecialToken"]["id"]
                    ids = (post.get("special_tokens") or {}).get(name, {}).get("ids")
                    if not ids:
                        raise ValueError(f"post_processor: special token {name!r} has no ids")
                    (suffix if seen_a else prefix).extend(int(i) for i in ids)
        elif post and post.get("type") not in ("ByteLevel", None):
            raise NotImplementedError(f"post_processor {post.get('type')!r} is not supported")
        if add_bos and self.bos_token is not None:
            prefix = [self.bos_token_id]
        if add_eos and self.eos_token is not None:
            suffix = [self.eos_token_id]
        return prefix, suffix

    @classmethod
    def from_pretrained(cls, path_or_dir, **kwargs):
        """Loads from a local directory (tokenizer.json or vocab.json + merges.txt, and configs)."""
        d = os.fspath(path_or_dir)
        if not os.path.isdir(d):
            raise OSError(f"{d} is not a local directory (only local tokenizer files are loaded here)")
        config = _read_json(os.path.join(d, "tokenizer_config.json"))
        for key, value in _read_json(os.path.join(d, "special_tokens_map.json")).items():
            config.setdefault(key, value)
        legacy_added = _read_json(os.path.join(d, "added_tokens.json"))
        if legacy_added:
            decoder = dict(config.get("added_tokens_decoder") or {})
            for content, idx in legacy_added.items():
                decoder.setdefault(str(idx), {"content": content, "special": False, "normalized": True})
            config["added_tokens_decoder"] = decoder
        for key in ("tokenizer_class", "auto_map", "special_tokens_map_file", "tokenizer_file", "backend",
                    "errors", "model_input_names"):
            config.pop(key, None)
        config["name_or_path"] = d
        config.update(kwargs)
        tokenizer_json = os.path.join(d, "tokenizer.json")
        vocab, merges = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
        if os.path.isfile(tokenizer_json):
            return cls(tokenizer_file=tokenizer_json, **config)
        if os.path.isfile(vocab) and os.path.isfile(merges):
            return cls(vocab, merges, **config)
        raise OSError(f"{d} has neither tokenizer.json nor vocab.json + merges.txt")

    # ---- special tokens -------------------------------------------------------------------

    def _special_str(self, name):
        tok = self._special.get(name)
        return tok["content"] if tok else None

    bos_token = property(lambda self: self._special_str("bos_token"))
    eos_token = property(lambda self: self._special_str("eos_token"))
    unk_token = property(lambda self: self._special_str("unk_token"))
    pad_token = property(lambda self: self._special_str("pad_token"))

    def _special_id(self, name):
        tok = self._special_str(name)
        return None if tok is None else self.convert_tokens_to_ids(tok)

    bos_token_id = property(lambda self: self._special_id("bos_token"))
    eos_token_id = property(lambda self: self._special_id("eos_token"))
    unk_token_id = property(lambda self: self._special_id("unk_token"))
    pad_token_id = property(lambda self: self._special_id("pad_token"))

    @property
    def all_special_tokens(self):
        out = []
        for tok in list(self._special.values()) + self._extra:
            if tok is not None and tok["content"] not in out:
                out.append(tok["content"])
        return out

    @property
    def all_special_ids(self):
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    # ---- vocabulary -----------------------------------------------------------------------

    @property
    def vocab_size(self):
        """Size of the base vocabulary, without added tokens."""
        return self._tok.vocab_size

    def __len__(self):
        """Size of the full vocabulary, added tokens included."""
        return self._tok.total_size

    def get_vocab(self):
        return self._tok.get_vocab()

    def convert_tokens_to_ids(self, tokens):
        """Token string(s) to id(s); unknown tokens give the unk id (None without one)."""
        if isinstance(tokens, str):
            idx = self._tok.token_to_id(tokens)
            if idx is None:
                unk = self._special_str("unk_token")
                idx = None if unk is None else self._tok.token_to_id(unk)
            return idx
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def _id_to_token(self, idx):
        tok = self._tok.id_to_token(int(idx))
        if tok is None:
            raise ValueError(f"unknown token id {int(idx)}")
        return tok

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        """Id(s) to token string(s) (vocabulary form, e.g. 'Ġthe'); unknown ids raise ValueError."""
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token(ids)
        out = []
        for idx in np.asarray(ids).reshape(-1).tolist() if isinstance(ids, np.ndarray) else ids:
            if skip_special_tokens and self._tok.is_special(int(idx)):
                continue
            out.append(self._id_to_token(idx))
        return out

    def tokenize(self, text):
        return self.convert_ids_to_tokens(self._tok.encode(text))

    # ---- encoding -------------------------------------------------------------------------

    def _encode_all(self, texts, add_special_tokens):
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"text must be str or a list of str, got {type(t).__name__}")
        seqs = self._tok.encode_batch(texts)
        if add_special_tokens and (self._prefix or self._suffix):
            seqs = [self._prefix + s + self._suffix for s in seqs]
        return seqs

    def __call__(self, text, add_special_tokens=True, padding=False, truncation=None, max_length=None,
                 return_tensors=None, return_attention_mask=True, padding_side=None, pad_to_multiple_of=None):
        """Encodes a str or a list of str -> {"input_ids", "attention_mask"} (lists, or int64
        arrays with return_tensors="np"). padding: False, True/"longest", "max_length";
        truncation: True/"longest_first"/"only_first" cuts to max_length (default model_max_length)."""
        single = isinstance(text, str)
        if not single and not isinstance(text, (list, tuple)):
            raise TypeError(f"text must be str or a list of str, got {type(text).__name__}")
        seqs = self._encode_all([text] if single else list(text), add_special_tokens)
        if truncation not in (None, False, "do_not_truncate"):
            if truncation not in (True, "longest_first", "only_first"):
                raise ValueError(f"unsupported truncation {truncation!r}")
            limit = self.model_max_length if max_length is None else int(max_length)
            keep_left = self.truncation_side == "left"
            seqs = [(s[len(s) - limit:] if keep_left else s[:limit]) if len(s) > limit else s for s in seqs]
        masks = [[1] * len(s) for s in seqs]
        if padding in (True, "longest", "max_length"):
            if self.pad_token is None:
                raise ValueError("Asking to pad but the tokenizer does not have a padding token; set pad_token "
                                 "(for example tokenizer.pad_token = tokenizer.eos_token)")
            if padding == "max_length":
                target = self.model_max_length if max_length is None else int(max_length)
            else:
                target = max((len(s) for s in seqs), default=0)
            if pad_to_multiple_of:
                target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
            pad_id, left = self.pad_token_id, (padding_side or self.padding_side) == "left"
            for i, s in enumerate(seqs):
                k = target - len(s)
                if k > 0:
                    seqs[i] = [pad_id] * k + s if left else s + [pad_id] * k
                    masks[i] = [0] * k + masks[i] if left else masks[i] + [0] * k
        elif padding not in (False, None, "do_not_pad"):
            raise ValueError(f"unsupported padding {padding!r}")
        if return_tensors is not None:
            if return_tensors != "np":
                raise ValueError(f"return_tensors={return_tensors!r} is not supported (use 'np')")
            if len({len(s) for s in seqs}) > 1:
                raise ValueError("sequences have different lengths: use padding=True to return an array")
            n = len(seqs[0]) if seqs else 0
            ids = np.array(seqs, dtype=np.int64).reshape(len(seqs), n)
            mask = np.array(masks, dtype=np.int64).reshape(len(seqs), n)
        else:
            ids, mask = (seqs[0], masks[0]) if single else (seqs, masks)
        out = {"input_ids": ids}
        if return_attention_mask:
            out["attention_mask"] = mask
        return out

    def encode(self, text, add_special_tokens=True, truncation=None, max_length=None, return_tensors=None):
        """Ids of one text (a list, or a (1, n) int64 array with return_tensors="np")."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self(text, add_special_tokens=add_special_tokens, truncation=truncation, max_length=max_length,
                    return_tensors=return_tensors, return_attention_mask=False)["input_ids"]

    # ---- decoding -------------------------------------------------------------------------

    def _cleanup_flag(self, clean_up_tokenization_spaces):
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if clean and not self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output:
            # transformers 5 skips the clean-up for BPE tokenizers (it deletes real spaces
            # before punctuation) unless forced; this follows it.
            if not self._warned_cleanup:
                logger.warning("Ignoring clean_up_tokenization_spaces=True for BPE tokenizer GPT2Tokenizer; set "
                               "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=True "
                               "to force it.")
                self._warned_cleanup = True
            return False
        return bool(clean)

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None):
        """Ids -> str. A batch (list of lists, 2-D array) gives a list of str."""
        clean = self._cleanup_flag(clean_up_tokenization_spaces)
        if isinstance(token_ids, (int, np.integer)):
            token_ids = [int(token_ids)]
        elif not isinstance(token_ids, (list, tuple, np.ndarray)):
            token_ids = np.asarray(token_ids)  # e.g. a torch tensor
        if isinstance(token_ids, np.ndarray) and token_ids.ndim == 2:
            return self._tok.decode_batch(token_ids, skip_special_tokens, clean)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple, np.ndarray)):
            return self._tok.decode_batch(token_ids, skip_special_tokens, clean)
        return self._tok.decode(token_ids, skip_special_tokens, clean)

    def batch_decode(self, sequences, skip_special_tokens=False, clean_up_tokenization_spaces=None):
        """Sequences (list of id lists or a 2-D array) -> list of str, decoded with the GIL released."""
        out = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces)
        return [out] if isinstance(out, str) else out

    def clean_up_tokenization(self, text):
        """transformers' clean-up rules (" ." -> ".", " n't" -> "n't", ...)."""
        return _C.clean_up_tokenization(text)

    def __repr__(self):
        return (f"GPT2Tokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"len={len(self)}, special={self.all_special_tokens})")


_GPT2_CLASSES = {"GPT2Tokenizer", "GPT2TokenizerFast"}


class AutoTokenizer:
    """Picks the tokenizer class from a local directory's tokenizer_config.json / config.json."""

    @staticmethod
    def from_pretrained(path_or_dir, **kwargs):
        d = os.fspath(path_or_dir)
        if not os.path.isdir(d):
            raise OSError(f"{d} is not a local directory (only local tokenizer files are loaded here)")
        cls_name = _read_json(os.path.join(d, "tokenizer_config.json")).get("tokenizer_class")
        config = _read_json(os.path.join(d, "config.json"))
        model_type = config.get("model_type")
        if model_type == "vision-encoder-decoder":  # captioners: the text side is the decoder
            model_type = (config.get("decoder") or {}).get("model_type")
        if cls_name in _GPT2_CLASSES or (cls_name is None and model_type == "gpt2"):
            return GPT2Tokenizer.from_pretrained(d, **kwargs)
        raise ValueError(f"{d}: unsupported tokenizer (tokenizer_class={cls_name!r}, model_type={model_type!r}); "
                         "only GPT-2 tokenizers are available")
