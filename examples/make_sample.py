"""Writes sentiment_reviews.jsonl: short product reviews with their known sentiment.

The sample is synthetic (templated sentences), so its answers are known exactly; the
demo uses them to measure the accuracy of the aggregated crowd answers.
Run: python -m examples.make_sample
"""
from __future__ import annotations

import json
import random
from pathlib import Path

PRODUCTS = ["headphones", "kettle", "backpack", "desk lamp", "phone case", "blender",
            "running shoes", "keyboard", "coffee grinder", "rain jacket", "monitor", "toaster"]
OPENERS = {
    "positive": ["Really happy with this {p}.", "This {p} is excellent.", "Love the {p}.",
                 "Best {p} I have owned.", "The {p} exceeded my expectations."],
    "negative": ["Very disappointed with this {p}.", "This {p} broke within a week.",
                 "Would not buy this {p} again.", "The {p} is badly made.",
                 "Returned the {p} the next day."],
    "neutral": ["The {p} arrived on Tuesday.", "I bought this {p} for my office.",
                "The {p} comes in three colours.", "This {p} is the standard size.",
                "Ordered the {p} last month."],
}
DETAILS = {
    "positive": ["Works perfectly.", "Great value for the price.", "Feels solid and well built.",
                 "Setup took a minute.", "Highly recommended."],
    "negative": ["It stopped working quickly.", "Cheap materials.", "Customer service ignored me.",
                 "Not worth the money.", "Poor quality overall."],
    "neutral": ["It does what the box says.", "Nothing special to report.",
                "It matches the description.", "Delivery was as expected.",
                "I have used it a few times."],
}


def make(count: int = 240, seed: int = 7) -> list[dict]:
    """count reviews, labels balanced, in a shuffled but fixed order."""
    rng = random.Random(seed)
    labels = ["positive", "negative", "neutral"]
    rows = []
    for index in range(count):
        label = labels[index % 3]
        product = rng.choice(PRODUCTS)
        text = f"{rng.choice(OPENERS[label]).format(p=product)} {rng.choice(DETAILS[label])}"
        rows.append({"external_id": f"review-{index:04d}", "text": text, "label": label})
    rng.shuffle(rows)
    return rows


if __name__ == "__main__":
    path = Path(__file__).with_name("sentiment_reviews.jsonl")
    path.write_text("".join(json.dumps(row) + "\n" for row in make()))
    print(f"wrote {path}")
