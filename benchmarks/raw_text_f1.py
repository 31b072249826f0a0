"""Tagging raw text against tagging CoNLL's own tokens: entity F1 by character spans.

Each sentence of a CoNLL file is turned back into plain text by `bptt.io.text.detokenize` (its gold
entities become character spans of that text) and tagged twice, by the code of
``bptt tag --format json`` (`Tagger.tag_segmented`):

    raw text        cut by bptt's tokenizer and sentence splitter, with the model's abbreviations
    pre-tokenized   the file's own tokens as one sentence (what ``bptt tag --input-format conll``
                    and ``bptt evaluate`` read), their offsets in the same text

A predicted entity is correct when its (type, char_start, char_end) is a gold entity's. Precision,
recall and F1 pool all sentences (conlleval's micro average; the pre-tokenized F1 is the one
``bptt evaluate`` prints). Also printed: the fraction of sentences whose tokens the tokenizer gives
back exactly, and into how many sentences the splitter cut them.

    python benchmarks/raw_text_f1.py runs/ner ../shared/data/conll2003/eng.testa
    python benchmarks/raw_text_f1.py runs/ner ../shared/data/conll2003/eng.testa --json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model directory written by bptt train")
    p.add_argument("data", help="a CoNLL file with gold tags (e.g. eng.testa)")
    p.add_argument("--max-sentences", type=int, help="only the first N sentences")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args()


def scores(gold, pred):
    """Precision, recall, F1 (percent) of predicted against gold entity sets, overall and per type.

    gold, pred: lists (one item per sentence) of sets of (type, char_start, char_end).
    Returns: dict name -> {"precision", "recall", "f1", "gold", "predicted", "correct"}.
    """
    counts = {}  # type -> Counter of gold, predicted, correct
    for g, p in zip(gold, pred):
        for name, pick in (("all", None), *((t, t) for t in {e[0] for e in g | p})):
            c = counts.setdefault(name, Counter())
            g_t = g if pick is None else {e for e in g if e[0] == pick}
            p_t = p if pick is None else {e for e in p if e[0] == pick}
            c["gold"] += len(g_t)
            c["predicted"] += len(p_t)
            c["correct"] += len(g_t & p_t)
    out = {}
    for name, c in sorted(counts.items()):
        precision = 100 * c["correct"] / c["predicted"] if c["predicted"] else 0.0
        recall = 100 * c["correct"] / c["gold"] if c["gold"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, **c}
    return out


def main():
    args = parse()
    import warnings

    from bptt.io.conll import detect_scheme, read_conll, spans, to_iob2
    from bptt.io.text import detokenize, pretokenized
    from bptt.models.tagger import load_tagger

    tagger = load_tagger(args.model)
    sentences = read_conll(args.data)[: args.max_sentences]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bptt evaluate names stray tags; here they are read alike
        scheme = detect_scheme(sentences)
    texts, gold, pre = [], [], []
    for s in sentences:
        text, offsets = detokenize(s.words, offsets=True)
        texts.append(text)
        entities = spans(to_iob2(s.tags, scheme))
        # a person model finds persons: its score is against the gold PER entities alone
        keep = [e for e in entities if tagger.cfg.task != "person" or e[0] == "PER"]
        gold.append({(t, offsets[a][0], offsets[b - 1][1]) for t, a, b in keep})
        pre.append(pretokenized(s.words, text, offsets))

    start = time.perf_counter()
    raw = list(tagger.tag_segmented(tagger.segment(t) for t in texts))
    seconds_raw = time.perf_counter() - start
    start = time.perf_counter()
    tok = list(tagger.tag_segmented(pre))
    seconds_pre = time.perf_counter() - start

    def entity_sets(tagged):
        return [{(e.type, e.char_start, e.char_end) for e in t.entities} for t in tagged]

    same = sum([t.text for t in r.segmented.tokens] == s.words for r, s in zip(raw, sentences))
    n_split = Counter(len(r.segmented.sentences) for r in raw)
    result = {
        "model": args.model,
        "data": args.data,
        "sentences": len(sentences),
        "scheme": scheme,
        "tokens_identical": same / len(sentences),
        "split_into": {str(k): v for k, v in sorted(n_split.items())},
        "raw_text": scores(gold, entity_sets(raw)),
        "pretokenized": scores(gold, entity_sets(tok)),
        "seconds": {"raw_text": seconds_raw, "pretokenized": seconds_pre},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{args.data}: {len(sentences)} sentences; model {args.model}")
    print(f"tokens identical to the file's after detokenize -> tokenize: {100 * same / len(sentences):.2f}%")
    print(
        "sentences the splitter cut them into: " + ", ".join(f"{k}: {v}" for k, v in sorted(n_split.items()))
    )
    types = sorted(t for t in set(result["raw_text"]) | set(result["pretokenized"]) if t != "all")
    print(f"\n{'':14}{'precision':>10}{'recall':>8}{'F1':>8}   " + "  ".join(f"{t:>6}" for t in types))
    for name in ("raw_text", "pretokenized"):
        r = result[name]
        per_type = "  ".join(f"{r[t]['f1'] if t in r else 0.0:6.2f}" for t in types)
        a = r["all"]
        print(f"{name:14}{a['precision']:10.2f}{a['recall']:8.2f}{a['f1']:8.2f}   {per_type}")
    f1_raw, f1_pre = (result[k]["all"]["f1"] for k in ("raw_text", "pretokenized"))
    print(f"\nraw text F1 {f1_raw:.2f}  pre-tokenized F1 {f1_pre:.2f}")


if __name__ == "__main__":
    main()
