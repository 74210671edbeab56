"""A small English -> French sentence-pair corpus, generated with a seed.

No parallel text ships offline. The grammar is tiny but asks for real translation: verb
conjugation by person, noun gender carried to articles and adjectives, adjectives that move
after the noun, elision (``je aime`` -> ``j'aime``) and the two-part negation ``ne ... pas``.
``data/external/pairs_example.tsv`` (the default ``data=pairs_tsv`` file) is its output:

    python tests/translation_corpus.py > data/external/pairs_example.tsv
"""

from __future__ import annotations

import itertools
import random

# (English, French, French person index): je, tu, il, elle, nous, ils
SUBJECTS = [("i", "je", 0), ("you", "tu", 1), ("he", "il", 2), ("she", "elle", 2)]
SUBJECTS += [("we", "nous", 3), ("they", "ils", 4)]
# English base form, third person singular, French stem, nous ending
VERBS = [("like", "likes", "aim", "ons"), ("watch", "watches", "regard", "ons")]
VERBS += [("eat", "eats", "mang", "eons"), ("find", "finds", "trouv", "ons")]
VERBS += [("look for", "looks for", "cherch", "ons"), ("carry", "carries", "port", "ons")]
ENDINGS = ["e", "es", "e", None, "ent"]  # None: the verb's own nous ending
NOUNS = [("cat", "chat", "m"), ("dog", "chien", "m"), ("apple", "pomme", "f")]
NOUNS += [("book", "livre", "m"), ("car", "voiture", "f"), ("bread", "pain", "m")]
NOUNS += [("house", "maison", "f"), ("box", "boîte", "f")]
# English, French masculine, feminine, placed before the noun in French
ADJECTIVES = [("small", "petit", "petite", True), ("big", "grand", "grande", True)]
ADJECTIVES += [("red", "rouge", "rouge", False), ("black", "noir", "noire", False)]
ADJECTIVES += [("green", "vert", "verte", False)]


def translate(subject, verb, noun, adjective, negated: bool) -> tuple[str, str]:
    english_subject, french_subject, person = subject
    base, third, stem, nous = verb
    english_noun, french_noun, gender = noun
    if negated:
        auxiliary = "does" if person == 2 else "do"
        english_verb = f"{auxiliary} not {base}"
    else:
        english_verb = third if person == 2 else base
    article = "le" if gender == "m" else "la"
    english_object, french_object = english_noun, french_noun
    if adjective is not None:
        english_adjective, masculine, feminine, before = adjective
        french_adjective = masculine if gender == "m" else feminine
        english_object = f"{english_adjective} {english_noun}"
        french_object = (
            f"{french_adjective} {french_noun}" if before else f"{french_noun} {french_adjective}"
        )
    french_verb = stem + (ENDINGS[person] or nous)
    vowel = french_verb[0] in "aeiou"
    if negated:
        negation = "n'" if vowel else "ne "
        french = f"{french_subject} {negation}{french_verb} pas"
    elif vowel and french_subject == "je":
        french = f"j'{french_verb}"
    else:
        french = f"{french_subject} {french_verb}"
    english = f"{english_subject} {english_verb} the {english_object}"
    return english, f"{french} {article} {french_object}"


def make_pairs(n: int = 2000, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct pairs, sampled without replacement from every sentence of the grammar."""
    grammar = itertools.product(SUBJECTS, VERBS, NOUNS, [None, *ADJECTIVES], [False, True])
    every = [translate(*parts) for parts in grammar]
    return random.Random(seed).sample(every, n)


if __name__ == "__main__":
    for english, french in make_pairs():
        print(f"{english}\t{french}")
