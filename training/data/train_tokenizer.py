#!/usr/bin/env python3
"""Trains the SentencePiece tokenizer of Sprint Studio's small text encoder on the dataset's captions.txt.

    train_tokenizer.py --captions DS/captions.txt --out DIR [--vocab-size 1024] [--model-type bpe|unigram]

writes DIR/tokenizer.model, which sprint::Tokenizer (core/src/tokenizer.cpp) loads like Gemma's tokenizer.model:

  * special ids as in Gemma: <pad> 0, <eos> 1, <bos> 2, <unk> 3 (pad/eos/bos are control pieces, unk the unknown
    piece), so the C++ side's add-BOS / right-padding / literal-special handling works unchanged;
  * byte fallback (256 <0xNN> pieces): any UTF-8 text encodes without <unk>, including characters that never occur
    in the lower-case captions (the C++ pipeline lower-cases ASCII only; a CHI prefix has capitals and newlines);
  * digits split into single pieces, as Gemma does.

Model type: BPE by default (--model-type unigram is available). Unigram trains without error on this corpus (about
10k short lines, ~2k distinct words) but its pruning degenerates at 1024 pieces: frequent words come out as single
letters ("states" -> st a t e s, "apple" -> a p ple, "red" -> "▁" + "red") and held-out captions average 7.1
tokens against 5.9 with BPE (train: 5.8 vs 5.7). BPE keeps whole frequent words and word stems, generalises better to
the held-out names, and is also what Gemma's own tokenizer uses. The C++ side is indifferent: SentencePieceProcessor
loads either type from the model file.

Training is deterministic (one thread, no sampling or shuffling of the input); the script trains twice and checks
the two models are byte-identical, then loads the model back, prints sample encodings and caption lengths in tokens
(BOS included, as the C++ side encodes them).
"""

import argparse
import io
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

GEMMA_SPECIALS = {"pad": (0, "<pad>"), "eos": (1, "<eos>"), "bos": (2, "<bos>"), "unk": (3, "<unk>")}
MIN_VOCAB = 16
SAMPLES = ["red apple", "an emoji of a grinning face", "flag of united states", "woman cook emoji",
           "a smiling cat with heart-eyes", "Hello, World! <bos>"]


class UsageError(Exception):
    """A problem with the arguments or the input: reported in one line, exit status 2."""


def import_sentencepiece():
    try:
        import sentencepiece
    except ImportError:
        raise UsageError("the python package sentencepiece is missing (use the project's venv, see bootstrap.sh)") \
            from None
    return sentencepiece


def trainer_options(captions, vocab_size, byte_fallback, model_type):
    """SentencePieceTrainer options. Everything that could vary between runs is pinned."""
    specials = {f"{name}_id": sid for name, (sid, _) in GEMMA_SPECIALS.items()}
    specials.update({f"{name}_piece": piece for name, (_, piece) in GEMMA_SPECIALS.items()})
    return dict(
        input=str(captions),
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=1.0,       # every character of the captions gets a piece
        byte_fallback=byte_fallback,  # anything else becomes <0xNN> byte pieces instead of <unk>
        split_digits=True,            # as Gemma
        input_sentence_size=0,        # use every line, no sampling
        shuffle_input_sentence=False,
        num_threads=1,                # multi-threaded EM can reorder floating-point sums
        minloglevel=2,                # quiet; errors still raise
        **specials,
    )


def explain_training_error(message, vocab_size, byte_fallback):
    """Turns SentencePiece's INTERNAL check messages into advice about --vocab-size."""
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        return (f"the captions cannot support {vocab_size} pieces: SentencePiece finds at most {too_high.group(2)} "
                f"distinct pieces in them (specials and byte pieces included). Rerun with --vocab-size "
                f"{too_high.group(2)} or less, or give it more caption text.")
    too_low = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        meta = len(GEMMA_SPECIALS) + (256 if byte_fallback else 0)
        return (f"--vocab-size {vocab_size} is too small: the captions' characters plus {meta} special/byte pieces "
                f"need at least {too_low.group(2)}. Rerun with --vocab-size {too_low.group(2)} or more.")
    return f"SentencePiece training failed: {message}"


def train_bytes(spm, options):
    """Trains once and returns the serialized model (nothing is written to disk)."""
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(model_writer=writer, **options)
    except RuntimeError as e:
        raise UsageError(explain_training_error(str(e), options["vocab_size"], options["byte_fallback"])) from None
    return writer.getvalue()


def write_atomically(path, data):
    """Writes data to path through a temporary file in the same folder, so a reader never sees half a model."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; the model is not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_specials(processor):
    """Raises when the special ids/pieces differ from what the C++ side (Gemma layout) expects."""
    got = {"pad": processor.pad_id(), "eos": processor.eos_id(), "bos": processor.bos_id(),
           "unk": processor.unk_id()}
    for name, (sid, piece) in GEMMA_SPECIALS.items():
        if got[name] != sid or processor.id_to_piece(sid) != piece:
            raise UsageError(f"trained model has {name} id {got[name]} (piece {processor.id_to_piece(got[name])!r}); "
                             f"expected {sid} {piece!r}")
        kind_ok = processor.is_unknown(sid) if name == "unk" else processor.is_control(sid)
        if not kind_ok:
            raise UsageError(f"trained model's {piece} is not a {'unknown' if name == 'unk' else 'control'} piece")
    print("special ids: " + ", ".join(f"{piece}={sid}" for sid, piece in GEMMA_SPECIALS.values())
          + " (Gemma layout; pad/eos/bos control, unk unknown)")


def print_samples(processor, texts):
    for text in texts:
        ids = [processor.bos_id()] + processor.encode(text)
        pieces = [processor.id_to_piece(i) for i in ids]
        print(f"  {text!r}: {len(ids)} tokens {pieces} ids {ids}")


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def length_report(processor, label, texts):
    """Token counts with BOS (what sprint::Tokenizer::encode_batch(add_bos=true) produces), no padding."""
    if not texts:
        return
    encoded = processor.encode(texts)
    lengths = sorted(1 + len(ids) for ids in encoded)
    byte_pieces = sum(1 for ids in encoded for i in ids if processor.is_byte(i))
    print(f"  {label}: {len(texts)} captions, tokens with BOS: max {lengths[-1]}, p99 {percentile(lengths, 99)}, "
          f"median {percentile(lengths, 50)}; byte-fallback tokens {byte_pieces}")


def manifest_captions(manifest):
    """{split: [all caption variants]} from a dataset manifest.jsonl."""
    out = {}
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                out.setdefault(item["split"], []).extend(item.get("captions") or [item["caption"]])
    return out


def read_captions(path):
    if not path.is_file():
        raise UsageError(f"captions file '{path}' does not exist (make it with build_emoji_dataset.py)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UsageError(f"captions file '{path}' holds no text")
    return lines


def parse_args(argv):
    p = argparse.ArgumentParser(description="Train the SentencePiece tokenizer (Gemma special ids) on captions.txt.")
    p.add_argument("--captions", required=True, help="one caption per line (the dataset's captions.txt)")
    p.add_argument("--out", required=True, help="output folder; gets tokenizer.model")
    p.add_argument("--vocab-size", type=int, default=1024, help="pieces in the vocabulary (default 1024)")
    p.add_argument("--model-type", choices=["bpe", "unigram"], default="bpe",
                   help="SentencePiece model type (default bpe; see the file's docstring for why)")
    p.add_argument("--no-byte-fallback", action="store_true",
                   help="no <0xNN> byte pieces (unknown characters then become <unk>)")
    return p.parse_args(argv)


def validate(args):
    """Checks the arguments; returns (captions path, caption lines, output folder)."""
    if args.vocab_size < MIN_VOCAB:
        raise UsageError(f"--vocab-size must be at least {MIN_VOCAB}, got {args.vocab_size}")
    captions = Path(args.captions)
    lines = read_captions(captions)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' exists and is not a folder")
    return captions, lines, out


def train_reproducibly(spm, options):
    """Trains twice and insists on byte-identical models; returns the model bytes."""
    model = train_bytes(spm, options)
    if train_bytes(spm, options) != model:
        raise UsageError("two trainings with the same settings gave different models: not reproducible")
    print(f"reproducibility: trained twice, byte-identical models ({len(model)} bytes)")
    return model


def report(processor, captions, lines):
    """Sample encodings and caption lengths, over captions.txt and (when next to it) every split of the manifest."""
    print("sample encodings (BOS added, no EOS, as sprint::Tokenizer::encode(text, add_bos=true)):")
    print_samples(processor, lines[:3] + SAMPLES)
    print("caption lengths:")
    length_report(processor, captions.name, lines)
    manifest = captions.parent / "manifest.jsonl"
    if manifest.is_file():
        for split, texts in sorted(manifest_captions(manifest).items()):
            length_report(processor, f"manifest {split}", texts)


def main(argv=None):
    try:
        args = parse_args(argv)
        captions, lines, out = validate(args)
        spm = import_sentencepiece()
        options = trainer_options(captions, args.vocab_size, not args.no_byte_fallback, args.model_type)
        model = train_reproducibly(spm, options)

        out.mkdir(parents=True, exist_ok=True)
        model_path = out / "tokenizer.model"
        write_atomically(model_path, model)
        processor = spm.SentencePieceProcessor(model_file=str(model_path))  # load back what was written
        print(f"wrote {model_path}: {args.model_type}, vocab size {processor.get_piece_size()}, "
              f"byte fallback {'on' if options['byte_fallback'] else 'off'}, trained on {len(lines)} captions")
        check_specials(processor)
        report(processor, captions, lines)
        return 0
    except UsageError as e:
        print(f"train_tokenizer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
