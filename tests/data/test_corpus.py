"""Corpus: lazy, in order, manifests; heterogeneous synthetic corpora."""

import json

import numpy as np
import pytest

from spikefm.data.corpus import Corpus, CorpusRecording, read_manifest, write_manifest
from spikefm.data.recording import DataError
from spikefm.data.store import write_recording
from spikefm.data.synthetic_corpus import CorpusSynthConfig, generate_corpus, group_configs
from spikefm.models.registry import build_config, get_spec


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    recordings = generate_corpus(CorpusSynthConfig(n_sessions=4, groups=2, n_trials=12, units=(10, 20), seed=1))
    for rec in recordings:
        write_recording(rec, root / f"{rec.session}.h5")
    return root, recordings


def test_folder_opens_lazily_and_windows_match_the_eager_recordings(corpus_dir):
    root, recordings = corpus_dir
    corpus = Corpus.open(root)
    assert sorted(corpus.sessions) == sorted(r.session for r in recordings)
    by_session = {r.session: r for r in recordings}
    for lazy in corpus:
        assert isinstance(lazy, CorpusRecording) and lazy._handle is None  # header read, file closed
        eager = by_session[lazy.session]
        a, b = lazy.window(1.0, 2.5).recording, eager.window(1.0, 2.5).recording
        np.testing.assert_array_equal(a.spikes.times, b.spikes.times)
        np.testing.assert_array_equal(a.behavior["hand_vel"].values, b.behavior["hand_vel"].values)
        assert lazy.behavior["hand_vel"].dim == eager.behavior["hand_vel"].dim


def test_models_size_themselves_from_a_lazy_corpus(corpus_dir):
    root, recordings = corpus_dir
    corpus = Corpus.open(root)
    for name in ("poyo", "ndt2_decoder", "neds", "spint", "mtm"):
        config = build_config(name, "tiny")
        spec = get_spec(name)
        by_session = {r.session: r for r in recordings}
        eager = [by_session[s] for s in corpus.sessions]
        assert spec.sizes_from_data(corpus.recordings, config) == spec.sizes_from_data(eager, config)


def test_manifests_json_and_text_and_select(corpus_dir, tmp_path):
    root, _ = corpus_dir
    corpus = Corpus.open(root)
    chosen = corpus.paths[::-1][:2]
    manifest = write_manifest(chosen, tmp_path / "m.json", scores={"a": 1.0}, info={"k": 2})
    assert json.loads(manifest.read_text())["info"] == {"k": 2}
    assert [p.resolve() for p in read_manifest(manifest)] == [p.resolve() for p in chosen]
    assert Corpus.open(manifest).sessions == [corpus.sessions[-1], corpus.sessions[-2]]
    text = tmp_path / "m.txt"
    text.write_text("# two sessions\n" + "\n".join(str(p) for p in chosen) + "\n")
    assert len(Corpus.open(text)) == 2
    assert corpus.select([corpus.sessions[1]]).sessions == [corpus.sessions[1]]
    with pytest.raises(DataError, match="not in the corpus"):
        corpus.select(["nope"])


def test_clear_errors(tmp_path, corpus_dir):
    with pytest.raises(DataError, match="not found"):
        Corpus.open(tmp_path / "missing")
    with pytest.raises(DataError, match="no recording files"):
        Corpus.open(tmp_path)
    root, _ = corpus_dir
    path = next(root.glob("*.h5"))
    with pytest.raises(DataError, match="duplicate session"):
        Corpus([path, path])


def test_synthetic_corpus_groups_differ():
    config = CorpusSynthConfig(n_sessions=6, groups=3, n_trials=10, seed=2)
    groups = group_configs(config)
    assert [g.n_sessions for g in groups] == [2, 2, 2]
    assert {g.latent_system for g in groups} == {"rotational", "lorenz"}
    assert len({g.rate_range for g in groups}) == 3 and len({g.latent_noise for g in groups}) == 3
    recordings = generate_corpus(config)
    assert len({r.session for r in recordings}) == 6
    assert [r.metadata["group"] for r in recordings] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="groups"):
        CorpusSynthConfig(n_sessions=2, groups=3)
