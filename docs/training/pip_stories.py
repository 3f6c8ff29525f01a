#!/usr/bin/env python3
"""Writes the training data of docs/training.md: 400 short stories about Pip,
a small robot, as JSON lines {"text": ...} (one example each). The same
world in varied sentences, so a model can learn it and still be tested on
stories it has not seen. Deterministic (seeded).

usage: pip_stories.py > pip.jsonl
"""
import json
import random

random.seed(7)
places = ["the garden", "the park", "the kitchen", "the beach", "the big hill",
          "the old barn", "the forest", "the library", "the school", "the pond"]
friends = [("a little cat", "The cat", "it"), ("a brown dog", "The dog", "it"),
           ("a yellow duck", "The duck", "it"), ("a shy mouse", "The mouse", "it"),
           ("a kind girl named Lily", "Lily", "she"), ("a boy named Tom", "Tom", "he"),
           ("an old owl", "The owl", "it"), ("a happy frog", "The frog", "it"),
           ("a girl named Sue", "Sue", "she"), ("a little bunny", "The bunny", "it")]
things = ["a shiny bolt", "a red button", "a lost key", "a tiny star", "a blue gear",
          "a golden coin", "a round stone", "a soft feather", "a green ball", "a small bell"]
hides = ["under a leaf", "behind a tree", "in the tall grass", "under a big rock",
         "next to the water", "inside an old box", "on top of a chair"]
looks = ["Pip had round eyes and little blue lights.", "Pip was small and made of shiny metal.",
         "Pip had two wheels and a little blue light on its head.",
         "Pip could beep and roll very fast."]
weather = ["The sun was bright.", "It was a rainy day.", "The wind was cold.",
           "The sky was blue and clear.", "It was a quiet morning.", "Snow fell softly."]
feels = ["happy", "proud", "glad", "thankful", "excited"]
helps = ['Pip said, "Beep boop! I will help you!"', 'Pip said, "Do not be sad. I can help."',
         'Pip beeped and said, "Let us look together!"', 'Pip rolled closer. "I will find it!"']
searches = ["Pip looked and looked.", "Pip used its blue light to look around.",
            "Pip rolled this way and that way.", "Pip looked high and low."]
endings = ["From that day on, Pip and {f} were best friends.",
           "Pip beeped a happy song and rolled home to charge.",
           "That night, Pip dreamed of {p}.", "Pip learned that helping others feels good.",
           "And Pip smiled with its little blue lights.",
           "{F} gave Pip a big hug, and Pip beeped with joy."]


def story():
    p, (f, F, pron), x = random.choice(places), random.choice(friends), random.choice(things)
    fl = F.lower() if F.startswith("The") else F
    s = ["Once upon a time, there was a small robot named Pip.", random.choice(looks),
         random.choice(weather), f"One day, Pip went to {p}.", f"There, Pip met {f}.",
         f"{F} was sad because {pron} had lost {x}.", random.choice(helps),
         random.choice(searches), f"At last, Pip found {x} {random.choice(hides)}.",
         f"{F} was so {random.choice(feels)}.",
         random.choice(endings).format(f=fl, F=F, p=p)]
    return " ".join(s)


for _ in range(400):
    print(json.dumps({"text": story()}))
