#!/usr/bin/env python3
"""N distinct search API requests a shopper's long tail would send
(issue 14: the cold path). Words come from the seed's own vocabulary
(shop/src/catalog/seed/vocab.rs), so they match the seeded catalog the way
real queries match a real one: one to three words, some misspelt, the last
one sometimes half typed, with a filter, a sort or a later page now and
then, and a share of browse requests without text (a category, a brand, a
sort). Deterministic for a given seed.

Usage: bench/search-queries.py [N] [SEED] > targets.txt
"""
import random
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

VOCAB = Path(__file__).resolve().parent.parent / "shop/src/catalog/seed/vocab.rs"


def vocabulary():
    text = VOCAB.read_text()
    slugs = re.findall(r'slug: "([a-z-]+)"', text)
    heads = re.findall(r'"([A-Z][a-z]+)"', text[text.index("BRAND_HEADS"):text.index("BRAND_TAILS")])
    tails = re.findall(r'"([a-z]+)"', text[text.index("BRAND_TAILS"):text.index("SELLER_HEADS")])
    brands = [h + t for h in heads for t in tails]
    words = set()
    for phrase in re.findall(r'"([^"]+)"', text[:text.index("SELLER_HEADS")]):
        for word in re.findall(r"[A-Za-z]{3,}", phrase):
            words.add(word.lower())
    words |= {b.lower() for b in brands}
    return sorted(words), slugs, brands


def misspell(word, rng):
    i = rng.randrange(1, len(word))
    kind = rng.randrange(3)
    if kind == 0:  # two letters swapped
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:  # one letter dropped
        return word[:i] + word[i + 1:]
    return word[:i] + rng.choice("aeiourstln") + word[i:]  # one letter too many


def request(words, slugs, brands, rng):
    params = []
    if rng.random() < 0.85:
        q = rng.sample(words, rng.choice([1, 1, 1, 2, 2, 3]))
        q = [misspell(w, rng) if len(w) >= 5 and rng.random() < 0.2 else w for w in q]
        if rng.random() < 0.2 and len(q[-1]) > 3:
            q[-1] = q[-1][: rng.randrange(2, len(q[-1]))]
        params.append(("q", " ".join(q)))
    if rng.random() < 0.2:
        params.append(("category", rng.choice(slugs)))
    if rng.random() < 0.1:
        for brand in rng.sample(brands, rng.choice([1, 1, 2])):
            params.append(("brand", brand))
    if rng.random() < 0.1:
        low = rng.choice([0, 10, 25, 50, 100])
        params += [("price_min", low), ("price_max", low + rng.choice([50, 100, 500]))]
    if rng.random() < 0.1:
        params.append(("rating_min", rng.choice([3, 4])))
    if rng.random() < 0.15:
        params.append(("in_stock", "true"))
    if rng.random() < 0.3:
        params.append(("sort", rng.choice(["price_asc", "price_desc", "rating", "newest"])))
    if rng.random() < 0.1:
        params.append(("page", rng.choice([2, 3, 5])))
    return "/api/v1/products?" + urlencode(params)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 14)
    words, slugs, brands = vocabulary()
    seen = set()
    while len(seen) < n:
        target = request(words, slugs, brands, rng)
        if target not in seen:
            seen.add(target)
            print(target)


if __name__ == "__main__":
    main()
