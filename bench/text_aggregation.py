"""Text and numeric aggregation on seeded synthetic answers: medoid vs ROVER, mean vs median.

Protocol (everything drawn from one numpy Generator seeded with --seed):

Transcription. A vocabulary of 1,500 pseudo-words (1-3 consonant-vowel(-consonant) syllables),
ranked shortest first, drawn with Zipf weights 1/rank^1.1. --items reference sentences of
8-25 words. A pool of 500 workers, each with a per-word error rate p ~ Beta(2, 12) (mean
0.14); every item gets 7 distinct workers, and the 3- and 5-worker rows use the first 3 and 5
of the same 7 answers (nested, so the rows differ by redundancy, not by sampling). A worker
copies each reference word, except that with probability p it makes one error: a substitution
(50%: half a typo, i.e. one character inserted, deleted, replaced or two swapped; half a
look-alike vocabulary word at character distance 1-2, or any word if it has none), a deletion
(25%) or an insertion (25%: the word followed by a random vocabulary word).
Methods: "medoid" = chalicelib.domain.aggregation.text_medoid (what translations and collected
text use; answers in worker order), "ROVER" = chalicelib.domain.aggregation.text.rover (what
transcriptions use, chosen on this benchmark). Two reference
rows: "first worker" (no aggregation) and "best answer (oracle)", the answer with the lowest
WER, an upper bound for any method that picks one of the answers.
Metrics: WER = token Levenshtein distance(output, reference) / reference length (rapidfuzz on
token lists), averaged over items; exact = share of items whose output tokens equal the
reference's; ms/item = mean time.perf_counter around one call (after one untimed warm-up
call); corr = Pearson correlation over items of the method's confidence with 1 - WER.
Long texts: max(20, items / 10) items of 150-250 words with 10 workers each, same error
model: mean and max time per item, and WER.

Numeric. True values uniform on [0, 100]; 500 workers with noise sd ~ Uniform(2, 15). Each
answer is, with probability 0.1, an outlier uniform on [0, 100], else the true value plus
N(0, sd) of its worker, clipped to [0, 100] and rounded to an integer (a 0-100 slider);
3, 5 and 7 nested workers per item as above; scale = 100. Methods: "mean" with confidence
1 - SD / 50; "median" = median_with_confidence (confidence 1 - (MAD + MeanAD) / 2 / 50, the
median and mean absolute deviations around the median); and the same median with either
deviation alone in the confidence ("MAD-only", "MeanAD-only"), the rejected alternatives.
Metrics: mean absolute error against the true value, and Pearson correlation of the
confidence with -|error| (within one method: does the confidence rank its own errors).

Run: .venv/bin/python -m bench.text_aggregation [--items 2000] [--seed 20261128]
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rapidfuzz
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from chalicelib.domain.aggregation import text_medoid
from chalicelib.domain.aggregation.numeric import median_with_confidence
from chalicelib.domain.aggregation.text import rover

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("chalicelib/domain/aggregation/text.py", "chalicelib/domain/aggregation/numeric.py")
REDUNDANCIES = (3, 5, 7)
VOCABULARY_SIZE = 1_500
WORKERS = 500
ONSETS = list("bcdfghklmnprstvwz") + ["br", "ch", "sh", "st", "tr"]
VOWELS = list("aeiou") + ["ai", "ea", "oo"]
CODAS = [""] * 6 + list("nrstlk")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


# ----------------------------------------------------------------------------- transcription
@dataclass
class Language:
    words: list[str]
    weights: np.ndarray
    look_alikes: list[np.ndarray]  # per word: indices of words at character distance 1-2


def make_language(rng: np.random.Generator) -> Language:
    """Pseudo-words, Zipf weights (short words common) and each word's look-alikes."""
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        syllables = rng.integers(1, 4)
        words.add("".join(ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))]
                          + CODAS[rng.integers(len(CODAS))] for _ in range(syllables)))
    ranked = sorted(words, key=lambda word: (len(word), word))
    weights = 1.0 / np.arange(1, len(ranked) + 1) ** 1.1
    distances = process.cdist(ranked, ranked, scorer=Levenshtein.distance, dtype=np.int32)
    look_alikes = [np.flatnonzero((row >= 1) & (row <= 2)) for row in distances]
    return Language(ranked, weights / weights.sum(), look_alikes)


def typo(word: str, rng: np.random.Generator) -> str:
    """word with one character inserted, deleted, replaced, or two neighbours swapped."""
    at = int(rng.integers(len(word)))
    kind = rng.integers(4)
    letter = LETTERS[rng.integers(26)]
    if kind == 0:
        return word[:at] + letter + word[at:]
    if kind == 1 and len(word) > 1:
        return word[:at] + word[at + 1:]
    if kind == 2 or len(word) < 2:
        return word[:at] + letter + word[at + 1:]
    at = min(at, len(word) - 2)
    return word[:at] + word[at + 1] + word[at] + word[at + 2:]


def transcribe(reference: list[int], error_rate: float, language: Language,
               rng: np.random.Generator) -> str:
    """One worker's transcription of the reference word indices under the error model."""
    words = language.words
    out: list[str] = []
    draws = rng.random((len(reference), 3))
    for index, (error, kind, how) in zip(reference, draws):
        word = words[index]
        if error >= error_rate:
            out.append(word)
        elif kind < 0.25:
            continue  # deletion
        elif kind < 0.5:
            out += [word, words[rng.choice(len(words), p=language.weights)]]
        elif how < 0.5:
            out.append(typo(word, rng))
        else:
            similar = language.look_alikes[index]
            pool = similar if len(similar) else np.arange(len(words))
            out.append(words[pool[rng.integers(len(pool))]])
    return " ".join(out)


def make_transcriptions(language: Language, items: int, length: tuple[int, int], workers: int,
                        rng: np.random.Generator) -> tuple[list[list[str]], list[list[str]]]:
    """(reference token lists, per item the answers of `workers` distinct workers in order)."""
    error_rates = rng.beta(2, 12, size=WORKERS)
    references, answers = [], []
    for _ in range(items):
        n_words = int(rng.integers(length[0], length[1] + 1))
        reference = rng.choice(len(language.words), size=n_words, p=language.weights).tolist()
        references.append([language.words[i] for i in reference])
        chosen = rng.choice(WORKERS, size=workers, replace=False)
        answers.append([transcribe(reference, error_rates[w], language, rng) for w in chosen])
    return references, answers


def medoid_method(texts: Sequence[str]) -> tuple[str, float]:
    index, confidence = text_medoid(texts)
    return texts[index], confidence


TEXT_METHODS: dict[str, Callable[[Sequence[str]], tuple[str, float]]] = {
    "medoid": medoid_method, "ROVER": rover}


def wer(output: str, reference: list[str]) -> float:
    return Levenshtein.distance(output.split(), reference) / len(reference)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation, NaN when either side is constant."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.std() == 0 or y_arr.std() == 0:
        return float("nan")
    return float(np.corrcoef(x_arr, y_arr)[0, 1])


def fmt_corr(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:+.3f}"


@dataclass
class TextScore:
    wer: float
    exact: float
    ms_mean: float
    ms_max: float
    corr: float


def score_text_method(method: Callable[[Sequence[str]], tuple[str, float]],
                      references: list[list[str]], answers: list[list[str]]) -> TextScore:
    method(answers[0])  # warm-up: imports, caches
    errors, exact, times, confidences = [], 0, [], []
    for reference, texts in zip(references, answers):
        start = time.perf_counter()
        output, confidence = method(texts)
        times.append(time.perf_counter() - start)
        errors.append(wer(output, reference))
        exact += output.split() == reference
        confidences.append(confidence)
    return TextScore(float(np.mean(errors)), exact / len(references), 1e3 * float(np.mean(times)),
                     1e3 * max(times), pearson(confidences, 1 - np.asarray(errors)))


def reference_rows(references: list[list[str]], answers: list[list[str]]
                   ) -> dict[str, tuple[float, float]]:
    """(mean WER, exact share) of the first worker's answer and of the oracle-best answer."""
    first = [wer(texts[0], ref) for ref, texts in zip(references, answers)]
    best = [min(wer(text, ref) for text in texts) for ref, texts in zip(references, answers)]
    return {"first worker": (float(np.mean(first)), float(np.mean(np.asarray(first) == 0))),
            "best answer (oracle)": (float(np.mean(best)), float(np.mean(np.asarray(best) == 0)))}


def run_transcription(language: Language, items: int, rng: np.random.Generator) -> None:
    references, answers = make_transcriptions(language, items, (8, 25), max(REDUNDANCIES), rng)
    mean_words = np.mean([len(ref) for ref in references])
    print(f"\n## Transcription: {items:,} items of 8-25 words (mean {mean_words:.1f}), "
          f"per-word error rate ~ Beta(2, 12)\n")
    print("| workers | method | WER % | exact % | ms/item | corr(conf, 1-WER) |")
    print("|---:|---|---:|---:|---:|---:|")
    for k in REDUNDANCIES:
        subset = [texts[:k] for texts in answers]
        for name, (mean_wer, exact) in reference_rows(references, subset).items():
            print(f"| {k} | {name} | {100 * mean_wer:.2f} | {100 * exact:.1f} | | |")
        for name, method in TEXT_METHODS.items():
            print(f"{k} workers, {name} ...", file=sys.stderr, flush=True)
            s = score_text_method(method, references, subset)
            print(f"| {k} | {name} | {100 * s.wer:.2f} | {100 * s.exact:.1f} | {s.ms_mean:.3f} "
                  f"| {fmt_corr(s.corr)} |")


def run_long_texts(language: Language, items: int, rng: np.random.Generator) -> None:
    workers = 10
    print("long texts ...", file=sys.stderr, flush=True)
    references, answers = make_transcriptions(language, items, (150, 250), workers, rng)
    print(f"\n## Long transcriptions: {items:,} items of 150-250 words, {workers} workers each\n")
    print("| method | WER % | ms/item mean | ms/item max |")
    print("|---|---:|---:|---:|")
    first = np.mean([wer(texts[0], ref) for ref, texts in zip(references, answers)])
    print(f"| first worker | {100 * first:.2f} | | |")
    for name, method in TEXT_METHODS.items():
        s = score_text_method(method, references, answers)
        print(f"| {name} | {100 * s.wer:.2f} | {s.ms_mean:.2f} | {s.ms_max:.2f} |")


# ----------------------------------------------------------------------------------- numeric
def mean_with_sd_confidence(values: Sequence[float], scale: float) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), max(0.0, 1.0 - float(arr.std()) / (scale / 2))


def median_with_spread_confidence(spread: Callable[[np.ndarray], float]
                                  ) -> Callable[[Sequence[float], float], tuple[float, float]]:
    """The median with confidence 1 - spread(|x - median|) / (scale / 2): rejected alternatives."""
    def aggregate(values: Sequence[float], scale: float) -> tuple[float, float]:
        arr = np.asarray(values, dtype=float)
        median = float(np.median(arr))
        return median, max(0.0, 1.0 - spread(np.abs(arr - median)) / (scale / 2))
    return aggregate


NUMERIC_METHODS: dict[str, Callable[[Sequence[float], float], tuple[float, float]]] = {
    "mean": mean_with_sd_confidence, "median": median_with_confidence,
    "median, MAD-only conf.": median_with_spread_confidence(lambda d: float(np.median(d))),
    "median, MeanAD-only conf.": median_with_spread_confidence(lambda d: float(d.mean()))}


def run_numeric(items: int, rng: np.random.Generator) -> None:
    scale, outlier_share = 100.0, 0.1
    truth = rng.uniform(0, scale, size=items)
    noise_sd = rng.uniform(2, 15, size=WORKERS)
    k_max = max(REDUNDANCIES)
    chosen = np.stack([rng.choice(WORKERS, size=k_max, replace=False) for _ in range(items)])
    honest = np.clip(truth[:, None] + rng.normal(size=(items, k_max)) * noise_sd[chosen], 0, scale)
    outliers = rng.uniform(0, scale, size=(items, k_max))
    answers = np.rint(np.where(rng.random((items, k_max)) < outlier_share, outliers, honest))
    print(f"\n## Numeric: {items:,} items, truth ~ U(0, 100), worker noise sd ~ U(2, 15), "
          f"{outlier_share:.0%} outliers ~ U(0, 100), answers rounded to integers, scale 100\n")
    print("| workers | method | MAE | corr(conf, -abs error) |")
    print("|---:|---|---:|---:|")
    for k in REDUNDANCIES:
        for name, method in NUMERIC_METHODS.items():
            results = [method(row[:k].tolist(), scale) for row in answers]
            estimates = np.array([estimate for estimate, _ in results])
            errors = np.abs(estimates - truth)
            corr = pearson([confidence for _, confidence in results], -errors)
            print(f"| {k} | {name} | {errors.mean():.2f} | {fmt_corr(corr)} |")


# -------------------------------------------------------------------------------------- main
def source_hashes() -> str:
    return ", ".join(f"`{Path(path).name}` {hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:12]}"
                     for path in SOURCES)


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown tables (progress goes to stderr)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000,
                        help="items per section (long texts: a tenth of it, at least 20)")
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args(argv)
    if args.items < 1:
        parser.error("--items must be positive")
    started = time.perf_counter()
    print(f"# Text and numeric aggregation benchmark, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}\n")
    print(f"`python -m bench.text_aggregation --items {args.items} --seed {args.seed}` on Python "
          f"{platform.python_version()}, {platform.machine()}; numpy {np.__version__}, rapidfuzz "
          f"{rapidfuzz.__version__}; sources (sha256) {source_hashes()}.")
    rng = np.random.default_rng(args.seed)
    language = make_language(rng)
    run_transcription(language, args.items, rng)
    run_long_texts(language, max(20, args.items // 10), rng)
    run_numeric(args.items, rng)
    print(f"\nTotal run time {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()
