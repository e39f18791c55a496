"""Lesson 0, welcome: the notebook's self-checking exercises.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

from .exercises import exercise, one_of


@exercise("l0_which_metric",
          hint="One number is computed on ordinary test inputs, another on inputs the attacker "
               "has prepared. Which one can an attack keep unchanged?",
          hints=("The sticker is the attacker's trigger. The metric measured on inputs that carry "
                 "it is the one that moved from 'normal' to 9 in 10.",),
          answer_type='a metric\'s name as a string, e.g. "clean_accuracy"',
          solution="'attack_success': a backdoored model keeps its clean accuracy; only the "
                   "attack success rate on triggered inputs shows the attack.",
          answer="attack_success", wrong="clean_accuracy")
def _l0_which_metric(answer):
    return one_of(answer, ("attack_success", "attack_success_rate"),
                   right="yes: clean accuracy can stay at 0.96 while the attacker's goal is met.",
                   wrong="clean accuracy would look perfectly normal here; try another metric.")
