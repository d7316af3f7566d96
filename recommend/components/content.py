"""Content similarity: TF-IDF (scikit-learn) over each item's text (title, description, tags,
brand, category joined)."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommend.components.base import Component
from recommend.protocol import TrainSet


class Content(Component):
    """A user's profile is the L2-normalised, ``log1p(weight)``-weighted sum of the TF-IDF vectors
    of their items; an item's score is its cosine with that profile. Items without text score 0.
    ``similar(item)`` is the cold-start answer for a new product."""

    name = "content"

    def __init__(self, ngram_max: int = 2, min_df: int = 1) -> None:
        super().__init__(ngram_max=ngram_max, min_df=min_df)

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            ngram_range=(1, int(self.params["ngram_max"])),
            min_df=int(self.params["min_df"]),
        )
        texts = train.item_text
        if not any(t.strip() for t in texts):
            self.vectors = sp.csr_matrix((train.n_items, 1), dtype=np.float32)
            return self
        try:
            v = self.vectorizer.fit_transform(texts)
        except ValueError:  # only stop words / nothing to index
            v = sp.csr_matrix((train.n_items, 1))
        self.vectors = sp.csr_matrix(normalize(v), dtype=np.float32)
        return self

    def profiles(self, users: np.ndarray) -> sp.csr_matrix:
        x = self._fitted().matrix[users].astype(np.float32)
        x.data = np.log1p(x.data)
        return sp.csr_matrix(normalize(x @ self.vectors))

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.profiles(users) @ self.vectors.T).toarray(), dtype=np.float32)

    def text_scores(self, text: str) -> np.ndarray:
        """Cosine of every item with a free text (a new product's description)."""
        if self.vectors.shape[1] <= 1 and not hasattr(self.vectorizer, "vocabulary_"):
            return np.zeros(self.vectors.shape[0], np.float32)
        q = normalize(self.vectorizer.transform([text]))
        return np.asarray((q @ self.vectors.T).toarray(), dtype=np.float32).ravel()

    def similar(self, item: int) -> np.ndarray:
        return np.asarray((self.vectors[item] @ self.vectors.T).toarray(), np.float32).ravel()
