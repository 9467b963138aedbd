"""The i-vector back end: extractor, centring, LDA, length normalisation and PLDA as one model.

Every utterance (or speaker enrollment) is reduced to the UBM's zeroth- and
first-order statistics, then::

    stats --IvectorExtractor--> w (rank,) --LDA (centred on the unaugmented training mean)--> (lda_dim,)
          --length_normalize--> v  --PLDA or cosine against each speaker--> score

A speaker is the *sum* of its enrollment vectors and their count, so
enrolling more audio later is adding (:meth:`IvectorBackend.enrollment`).
Everything is trained on the training speakers' statistics only.
"""

from __future__ import annotations

import numpy as np

from sklearn.base import BaseEstimator

from streamgmm import SufficientStats, accumulate
from streamgmm.io import HEADER_FIELDS, check_header, header, prefixed, scalar

from .ivector import IvectorExtractor
from .plda import LDA, PLDA, cosine_scores, length_normalize

BACKEND_KIND = "speaker_id.IvectorBackend"
SCORINGS = ("plda", "cosine")
_PARTS = {"extractor": IvectorExtractor, "lda": LDA, "plda": PLDA}


class IvectorBackend(BaseEstimator):
    """i-vectors + LDA + PLDA (or cosine) trained on labelled statistics of a diagonal UBM.

    Parameters
    ----------
    rank : int, default=200
        i-vector dimension.
    lda_dim : int or None, default=None
        LDA output dimension: at most ``rank`` and the number of training
        speakers - 1 (the discriminants), or ``rank`` (every direction, the
        discriminants first). ``None`` takes ``rank`` when the scoring can
        use directions the training speakers do not span (cosine, or PLDA
        with shrinkage), else the discriminants (in ``lda_dim_``).
    scoring : {"plda", "cosine"}, default="plda"
    max_iter : int, default=10
        EM iterations of the i-vector extractor.
    plda_iter : int, default=10
        EM iterations of the PLDA.
    plda_shrinkage : None, "auto" or float in [0, 1], default="auto"
        ``PLDA(shrinkage=)``: the between-speaker covariance shrunk towards
        isotropic by the Ledoit-Wolf intensity of the training speaker
        means, which is large when the training speakers are few for the
        LDA dimension and vanishes with many. It also gives the directions
        the training speakers do not span a between-speaker variance, so
        that with fewer training speakers than ``rank`` the PLDA still
        scores every direction in which new speakers differ.
    random_state : int, default=0
        Seeds the extractor's initialisation.

    Attributes
    ----------
    extractor_ : IvectorExtractor
    lda_ : LDA
    plda_ : PLDA or None
        ``None`` with cosine scoring.
    lda_dim_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM, accumulate
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(3000, 3)))
    >>> centres = rng.normal(size=(8, 3))
    >>> stats = [accumulate(ubm, rng.normal(centres[s], 1.0, size=(60, 3))) for s in range(8) for _ in range(6)]
    >>> labels = np.repeat(np.arange(8), 6)
    >>> backend = IvectorBackend(rank=4, lda_dim=3, max_iter=3).fit(ubm, stats, labels)
    >>> vectors = backend.vectors(stats)
    >>> vectors.shape
    (48, 3)
    >>> enroll_sum, count = backend.enrollment(vectors[:3])
    >>> backend.score(enroll_sum[None, :], [count], vectors[3:6]).shape
    (3, 1)
    """

    def __init__(self, rank=200, *, lda_dim=None, scoring="plda", max_iter=10, plda_iter=10, plda_shrinkage="auto",
                 random_state=0):
        self.rank = rank
        self.lda_dim = lda_dim
        self.scoring = scoring
        self.max_iter = max_iter
        self.plda_iter = plda_iter
        self.plda_shrinkage = plda_shrinkage
        self.random_state = random_state

    def check_speakers(self, n_speakers, n_warps=0):
        """The LDA dimension ``n_speakers`` training speakers support; ValueError when they are too few.

        Call it before expensive work (the CLI does, before training the UBM).

        Parameters
        ----------
        n_speakers : int
            Real training speakers (at least 3).
        n_warps : int, default=0
            VTLN warps the training also hears them through
            (:mod:`~speaker_id.frontend.augmentation`): each adds
            ``n_speakers`` pseudo-speakers to what LDA can separate.

        Returns
        -------
        int
            ``lda_dim``, or the largest possible when it is None.
        """
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}.")
        if n_speakers < 3:
            raise ValueError(
                f"the i-vector back end needs at least 3 training speakers for LDA and PLDA, got {n_speakers}; "
                "train on more speakers or use the gmm back end."
            )
        n_labels = n_speakers * (1 + n_warps)
        largest = min(n_labels - 1, self.rank)
        every = self.scoring == "cosine" or self.plda_shrinkage is not None
        if self.lda_dim is None:
            return self.rank if every else largest
        if isinstance(self.lda_dim, bool) or not isinstance(self.lda_dim, (int, np.integer)):
            raise ValueError(f"lda_dim must be a positive integer or None, got {self.lda_dim!r}.")
        if self.lda_dim == self.rank and every:
            return int(self.lda_dim)
        if not 1 <= self.lda_dim <= largest:
            raise ValueError(
                f"lda_dim={self.lda_dim} is not possible with {n_labels} training speakers"
                f"{f' ({n_speakers} and their {n_speakers * n_warps} VTLN pseudo-speakers)' if n_warps else ''} "
                f"and rank {self.rank}: "
                f"LDA keeps at most min(speakers - 1, rank) = {largest} discriminants; ask for {largest} or fewer"
                + (f", or the rank ({self.rank}) for every direction" if every else "")
                + " (or leave it unset), or train on more speakers."
            )
        return int(self.lda_dim)

    def fit(self, ubm, stats, labels, client=None, augmented=None):
        """Train the extractor, the centring, the LDA and the PLDA on labelled statistics.

        Parameters
        ----------
        ubm : OnlineGMM
            Fitted, diagonal.
        stats : list of SufficientStats
            One per training session (utterance or segment) under ``ubm``.
            With ``client``: futures of the cluster, each a list of them
            (see :func:`cluster_training_sessions`).
        labels : array-like of shape (n_sessions,)
            The speaker of each session; LDA and PLDA need at least two
            speakers with two sessions or more.
        client : dask.distributed.Client, optional
            Train the extractor where the statistics are (its accumulators
            add); LDA and PLDA, on the small i-vectors, run here.
        augmented : array-like of bool, shape (n_sessions,), optional
            Which sessions are augmented copies (such as VTLN pseudo-speakers)
            rather than audio as enrolled and tested audio sounds. Everything
            trains on all sessions, but the vectors are centred (before
            length normalisation) on the mean of the others: augmented copies
            shift the mean away from where real i-vectors lie. None: no
            session is augmented.

        Returns
        -------
        self
        """
        labels = np.asarray(labels)
        if client is None and labels.shape != (len(stats),):
            raise ValueError(f"got {len(stats)} statistics but {labels.size} labels; pass one speaker per session.")
        real = np.ones(len(labels), dtype=bool) if augmented is None else ~np.asarray(augmented, dtype=bool)
        if real.shape != labels.shape:
            raise ValueError(f"augmented has shape {real.shape} but there are {labels.size} labels; "
                             "pass one flag per session.")
        if not real.any():
            raise ValueError("every session is marked augmented; the back end needs unaugmented sessions to centre on.")
        lda_dim = self.check_speakers(np.unique(labels).size)
        self.extractor_ = IvectorExtractor(rank=self.rank, max_iter=self.max_iter,
                                           random_state=self.random_state).fit(ubm, stats, client=client)
        raw = self.extractor_.transform(stats) if client is None else self.extractor_.transform_on_cluster(stats, client)
        if len(raw) != len(labels):
            raise ValueError(f"got {len(raw)} statistics but {labels.size} labels; pass one speaker per session.")
        self.lda_dim_ = lda_dim
        self.lda_ = LDA(n_components=self.lda_dim_).fit(raw, labels, centre=raw[real].mean(axis=0))
        processed = length_normalize(self.lda_.transform(raw))
        self.plda_ = None
        if self.scoring == "plda":
            self.plda_ = PLDA(max_iter=self.plda_iter, shrinkage=self.plda_shrinkage).fit(processed, labels)
        return self

    def _check_is_fitted(self):
        if not hasattr(self, "extractor_"):
            raise ValueError("this IvectorBackend is not fitted; call fit(ubm, stats, labels) first.")

    def vectors(self, stats):
        """The processed i-vectors (centred, LDA, length-normalised) of sessions.

        Parameters
        ----------
        stats : iterable of SufficientStats

        Returns
        -------
        ndarray of shape (n_sessions, lda_dim_)
        """
        self._check_is_fitted()
        stats = list(stats)
        for s in stats:
            if not isinstance(s, SufficientStats):
                raise TypeError(f"expected streamgmm.SufficientStats, got {type(s).__name__}.")
        raw = self.extractor_.transform(stats)
        return length_normalize(self.lda_.transform(raw))

    @staticmethod
    def enrollment(vectors):
        """A speaker from its sessions' vectors: their sum and count (add more later).

        Parameters
        ----------
        vectors : ndarray of shape (n_sessions, lda_dim_)

        Returns
        -------
        sum : ndarray of shape (lda_dim_,)
        count : int
        """
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if vectors.shape[0] == 0:
            raise ValueError("no enrollment vectors: enroll at least one utterance with speech.")
        return vectors.sum(axis=0), int(vectors.shape[0])

    def score(self, enroll_sums, counts, test_vectors):
        """Scores of test vectors against enrolled speakers.

        Parameters
        ----------
        enroll_sums : ndarray of shape (n_speakers, lda_dim_)
        counts : array-like of shape (n_speakers,)
            Sessions summed into each speaker.
        test_vectors : ndarray of shape (n_tests, lda_dim_)

        Returns
        -------
        ndarray of shape (n_tests, n_speakers)
            PLDA log-likelihood ratios, or cosine similarities.
        """
        self._check_is_fitted()
        if self.plda_ is None:
            return cosine_scores(enroll_sums, test_vectors).T
        return self.plda_.score(enroll_sums, np.asarray(counts), test_vectors).T

    # ----------------------------------------------------------------- files
    def to_arrays(self):
        """The back end as plain arrays (each part's under its prefix), for one ``.npz``."""
        self._check_is_fitted()
        arrays = dict(header(BACKEND_KIND))
        arrays.update(rank=np.array(self.rank), lda_dim=np.array(self.lda_dim_),
                      scoring=np.array(self.scoring), max_iter=np.array(self.max_iter),
                      plda_iter=np.array(self.plda_iter))
        for prefix in _PARTS:
            part = getattr(self, prefix + "_")
            if part is not None:
                arrays.update({f"{prefix}.{name}": value for name, value in part.to_arrays().items()})
        return arrays

    @classmethod
    def file_fields(cls):
        """The members of a back-end file (see :class:`streamgmm.io.Field`): settings, then each part's.

        The PLDA part is optional (cosine scoring has none); each part's
        dimensions are named under its prefix.
        """
        fields = {name: scalar("real") for name in ("rank", "lda_dim", "max_iter", "plda_iter")}
        fields["scoring"] = scalar("str", max_chars=64)
        for prefix, part_cls in _PARTS.items():
            part = {**HEADER_FIELDS, **part_cls.file_fields()}
            fields.update(prefixed(part, prefix + ".", required=False if prefix == "plda" else None))
        return fields

    @classmethod
    def from_arrays(cls, arrays, *, source="i-vector back end"):
        """Rebuild a back end written by :meth:`to_arrays`; every part is validated."""
        check_header(arrays, BACKEND_KIND, source)
        try:
            scoring = str(arrays["scoring"])
            backend = cls(rank=int(arrays["rank"]), lda_dim=int(arrays["lda_dim"]), scoring=scoring,
                          max_iter=int(arrays["max_iter"]), plda_iter=int(arrays["plda_iter"]))
        except KeyError as exc:
            raise ValueError(f"{source} is missing the field {exc.args[0]!r}; it is truncated or foreign.") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source} holds invalid settings ({exc}); the file is corrupt.") from None
        if scoring not in SCORINGS:
            raise ValueError(f"{source} names an unknown scoring {scoring!r}; the file is corrupt.")
        for prefix, part_cls in _PARTS.items():
            members = {name[len(prefix) + 1:]: value for name, value in arrays.items() if name.startswith(prefix + ".")}
            if not members and prefix == "plda" and scoring == "cosine":
                setattr(backend, "plda_", None)
                continue
            setattr(backend, prefix + "_", part_cls.from_arrays(members, source=f"{source} ({prefix})"))
        if backend.plda_ is not None:  # the setting lives in the PLDA part
            backend.plda_shrinkage = backend.plda_.shrinkage
        rank = backend.extractor_.T_.shape[2]
        if backend.lda_.components_.shape[1] != rank:
            raise ValueError(f"{source} holds an LDA for {backend.lda_.components_.shape[1]}-dim vectors, "
                             f"not rank {rank}; the file is corrupt.")
        backend.lda_dim_ = backend.lda_.components_.shape[0]
        return backend


def _segments(n_frames, segment_frames):
    """Start and end frames of the sessions an utterance is cut into (whole when too short to cut)."""
    if n_frames < 2 * segment_frames:
        return [(0, n_frames)]
    return [(i, i + segment_frames) for i in range(0, n_frames - segment_frames + 1, segment_frames)]


def _session_stats(X, ubm, cut, segment_frames):
    """The statistics of one utterance's sessions: the whole utterance, or its segments when ``cut``."""
    spans = _segments(len(X), segment_frames) if cut else [(0, len(X))]
    return [accumulate(ubm, X[a:b]) for a, b in spans]


def _lone_utterances(speakers):
    """Which utterances are their speaker's only one (those are cut into segments)."""
    counts: dict = {}
    for speaker in speakers:
        counts[speaker] = counts.get(speaker, 0) + 1
    return [counts[speaker] == 1 for speaker in speakers]


def training_sessions(speakers, features, ubm, segment_frames=300):
    """Labelled statistics to train the back end on: one session per utterance.

    A speaker with a single utterance has no second session to show how a
    voice varies; its utterance is cut into segments of ``segment_frames``
    (when it holds two or more) that stand in as its sessions.

    Parameters
    ----------
    speakers : sequence of str, length n_utterances
        The speaker of each utterance.
    features : sequence of ndarray of shape (n_frames_i, n_features)
    ubm : OnlineGMM
    segment_frames : int, default=300
        3 s of speech at 100 frames per second.

    Returns
    -------
    stats : list of SufficientStats
        In utterance order (an utterance's segments in time order).
    labels : ndarray of str, shape (n_sessions,)
    """
    if len(speakers) != len(features):
        raise ValueError(f"got {len(features)} feature arrays but {len(speakers)} speakers; pass one per utterance.")
    stats, labels = [], []
    for speaker, X, cut in zip(speakers, features, _lone_utterances(speakers)):
        sessions = _session_stats(X, ubm, cut, segment_frames)
        stats += sessions
        labels += [speaker] * len(sessions)
    return stats, np.array(labels)


def _group_sessions(features, cuts, ubm, segment_frames):
    return [s for X, cut in zip(features, cuts) for s in _session_stats(X, ubm, cut, segment_frames)]


def cluster_training_sessions(speakers, features, ubm, segment_frames=300):
    """:func:`training_sessions` of features kept on a cluster; the statistics stay there too.

    Parameters
    ----------
    speakers : sequence of str
        The speaker of each of ``features.paths``.
    features : speaker_id.frontend.cluster.ClusterFeatures
    ubm : OnlineGMM
    segment_frames : int, default=300

    Returns
    -------
    parts : list of Future
        One per group of files: the list of its sessions' statistics.
    labels : ndarray of str, shape (n_sessions,)
        In the order of the parts' sessions.
    """
    from streamgmm.distributed import broadcast

    if len(speakers) != len(features):
        raise ValueError(f"got {len(features)} files but {len(speakers)} speakers; pass one per file.")
    lengths = features.map(len, features.paths)
    cuts = _lone_utterances(speakers)
    labels = [speaker for speaker, n, cut in zip(speakers, lengths, cuts)
              for _ in (_segments(n, segment_frames) if cut else [None])]
    client, model = features.client, broadcast(features.client, ubm)
    parts, start = [], 0
    for group, future in zip(features.groups, features.futures):
        parts.append(client.submit(_group_sessions, future, cuts[start:start + len(group)], model, segment_frames,
                                   pure=False))
        start += len(group)
    return parts, np.array(labels)
