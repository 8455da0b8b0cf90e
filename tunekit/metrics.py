"""BLEU-4 and ROUGE-1/2/L of generated answers against the data set's answers (``do_predict``).

The definitions are LLaMA-Factory's, so that the numbers compare with its ``predict_results.json``:
- ROUGE: both texts split into words by jieba (Chinese words; other text splits at spaces and
  punctuation), the F-scores of ``rouge_chinese`` (ROUGE-1, ROUGE-2, ROUGE-L);
- BLEU-4: NLTK's ``sentence_bleu`` over characters, with Chen & Cherry's smoothing method 3;
each times 100 and averaged over the rows. An empty answer (or reference) scores 0.
"""

from __future__ import annotations

import logging

KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")


def similarity(predictions: list[str], references: list[str]) -> dict[str, float]:
    """The mean BLEU-4, ROUGE-1, ROUGE-2 and ROUGE-L (0-100) of ``predictions`` against ``references``."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    jieba.setLogLevel(logging.WARNING)  # not its "Building prefix dict" report on first use
    smoothing = SmoothingFunction().method3
    totals = dict.fromkeys(KEYS, 0.0)
    for prediction, reference in zip(predictions, references):
        hypothesis_words = " ".join(jieba.cut(prediction)).split()
        reference_words = " ".join(jieba.cut(reference)).split()
        if hypothesis_words and reference_words:
            rouge = Rouge().get_scores(" ".join(hypothesis_words), " ".join(reference_words))[0]
            for key in ("rouge-1", "rouge-2", "rouge-l"):
                totals[key] += round(rouge[key]["f"] * 100, 4)
        if prediction and reference:
            bleu = sentence_bleu([list(reference)], list(prediction), smoothing_function=smoothing)
            totals["bleu-4"] += round(bleu * 100, 4)
    return {key: round(value / max(len(predictions), 1), 4) for key, value in totals.items()}
