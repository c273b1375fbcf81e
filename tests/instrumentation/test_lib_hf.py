"""The Hugging Face family's files: safetensors, h5py and tokenizers (their hooks), and
datasets and transformers through them, the pyarrow hooks and the files hook. Real programs
under opentelemetry-instrument, and the instrumentors in code: uninstrumented and errors
passing through (every library's span, suppressed and hook-failure cases:
test_lib_instrumentors.py).

Each program works on files the test made beforehand (outside clew); the test checks that
every file the program read or wrote is one record of that operation, by the program's
process, with the blake3 digest of its content (a read: of the content it had when read),
and that nothing else is recorded under the working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from instrumentor_cases import io_spans
from library_cases import check_program, library_case

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")
pytest.importorskip("h5py")
pytest.importorskip("tokenizers")

pytestmark = pytest.mark.integration

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def make_weights(workdir: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.arange(10.0)}, workdir / "in_np.safetensors")
    save_file({"b": np.ones((2, 3), dtype=np.float32)}, workdir / "in_pt.safetensors")
    linear = {"weight": np.eye(2, dtype=np.float32), "bias": np.zeros(2, dtype=np.float32)}
    save_file(linear, workdir / "in_model.safetensors")


def make_hdf5(workdir: Path) -> None:
    import h5py

    for name in ("in.h5", "append.h5", "update.h5"):
        with h5py.File(workdir / name, "w") as handle:
            handle["x"] = np.arange(10)


def word_level_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "a": 5, "b": 6}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def make_tokenizer_files(workdir: Path) -> None:
    word_level_tokenizer().save(str(workdir / "tokenizer.json"))
    (workdir / "corpus.txt").write_text("a b a\nb a c\n")


def make_tabular(workdir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [1, 2, 3], "text": ["a", "b", "c"]})
    (workdir / "data").mkdir()
    pq.write_table(table, workdir / "data" / "data.parquet")
    (workdir / "data" / "data.csv").write_text("id,text\n1,a\n2,b\n")
    (workdir / "data" / "data.jsonl").write_text('{"id": 1, "text": "a"}\n')
    (workdir / "data" / "data.txt").write_text("first line\nsecond line\n")
    with pa.OSFile(str(workdir / "data" / "data.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


def make_dataset_cache(workdir: Path) -> None:
    """The source files, and datasets' Arrow cache of the CSV one, made by a plain run."""
    make_tabular(workdir)
    program = 'from datasets import load_dataset\n' \
        'load_dataset("csv", data_files="data/data.csv", cache_dir="cache")'
    subprocess.run([sys.executable, "-c", program], cwd=workdir, env={**os.environ, **OFFLINE},
                   check=True, capture_output=True)


def make_pretrained_inputs(workdir: Path) -> None:
    (workdir / "tok").mkdir()
    word_level_tokenizer().save(str(workdir / "tok" / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
              "pad_token": "[PAD]", "model_max_length": 16}
    (workdir / "tok" / "tokenizer_config.json").write_text(json.dumps(config))


# name: (make the inputs, the program, the files it reads, the files it writes, whether each
# file is opened once: else the library opens it several times, one record all the same).
# Names as library_cases.files_named takes them ("d/", globs).
CASES = {
    "safetensors numpy and torch": (make_weights, """
        from pathlib import Path
        import numpy as np, torch
        import safetensors.numpy, safetensors.torch
        from safetensors import safe_open
        safetensors.numpy.load_file("in_np.safetensors")
        with safe_open(Path("in_pt.safetensors"), framework="pt") as handle:
            handle.get_tensor("b")
        safetensors.torch.load_model(torch.nn.Linear(2, 2), "in_model.safetensors")
        safetensors.numpy.save_file({"c": np.zeros(4)}, "out_np.safetensors")
        safetensors.torch.save_file({"d": torch.ones(3)}, Path("out_pt.safetensors"))
        safetensors.torch.save_model(torch.nn.Linear(2, 2), "out_model.safetensors")
        """, ["in_np.safetensors", "in_pt.safetensors", "in_model.safetensors"],
        ["out_np.safetensors", "out_pt.safetensors", "out_model.safetensors"], True),
    "h5py read, write, append and update": (make_hdf5, """
        import h5py, numpy as np
        with h5py.File("in.h5") as handle:
            handle["x"][:]
        with h5py.File("out.h5", "w") as handle:
            handle["y"] = np.arange(4)
        with h5py.File("append.h5", "a") as handle:
            handle["z"] = np.arange(3)
        handle = h5py.File("update.h5", "r+")
        handle["x"][0] = 42
        handle.close()
        """, ["in.h5", "append.h5", "update.h5"], ["out.h5", "append.h5", "update.h5"], True),
    "tokenizers from_file, save, train and a model's save": (make_tokenizer_files, """
        import os
        from tokenizers import Tokenizer, models, trainers
        Tokenizer.from_file("tokenizer.json").save("saved.json")
        trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trained.train(["corpus.txt"], trainers.WordPieceTrainer(special_tokens=["[UNK]"]))
        os.mkdir("model")
        trained.model.save("model")
        """, ["tokenizer.json", "corpus.txt"], ["saved.json", "model/vocab.txt"], True),
    "datasets from local files, its Arrow cache, map, save and load": (make_tabular, """
        from datasets import Dataset, load_dataset, load_from_disk
        for builder, name in (("csv", "csv"), ("json", "jsonl"), ("text", "txt"),
                              ("arrow", "arrow"), ("parquet", "parquet")):
            loaded = load_dataset(builder, data_files=f"data/data.{name}", cache_dir="cache")
        mapped = loaded["train"].map(lambda row: {"double": row["id"] * 2})
        Dataset.from_file(mapped.cache_files[0]["filename"])
        mapped.save_to_disk("saved")
        loaded = load_from_disk("saved")
        loaded.to_parquet("out.parquet")
        loaded.to_csv("out.csv")
        loaded.to_json("out.jsonl")
        """, ["data/*", "cache/**/*.arrow", "saved/*"],
        ["cache/**/*", "saved/*", "out.parquet", "out.csv", "out.jsonl"], False),
    "datasets reusing its Arrow cache": (make_dataset_cache, """
        from datasets import load_dataset
        load_dataset("csv", data_files="data/data.csv", cache_dir="cache")
        """, ["cache/**/*.arrow", "cache/**/dataset_info.json", "cache/**/*_builder.lock",
              "cache/*.lock"], [], False),
    "transformers save_pretrained and from_pretrained": (make_pretrained_inputs, """
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64))
        model.save_pretrained("model")
        model.save_pretrained("sharded", max_shard_size="20KB")
        BertModel.from_pretrained("model")
        BertModel.from_pretrained("sharded")
        AutoTokenizer.from_pretrained("tok").save_pretrained("tok_out")
        """, ["model/*", "sharded/*", "tok/*"], ["model/*", "sharded/*", "tok_out/*"], False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_is_one_record_with_its_digest(case, run_instrumented, spool, workdir):
    make_inputs, program, reads, writes, opened_once = CASES[case]
    if case.startswith(("datasets", "transformers")):
        pytest.importorskip(case.split()[0])
    make_inputs(workdir)

    check_program(run_instrumented, spool, workdir, program, reads, writes, env=OFFLINE,
                  any_count=not opened_once)


# -- the instrumentors in code -----------------------------------------------------------------

HOOKS = """
from clew.instrumentation import H5pyInstrumentor, SafetensorsInstrumentor, TokenizersInstrumentor
INSTRUMENTORS = (SafetensorsInstrumentor(), H5pyInstrumentor(), TokenizersInstrumentor())
def instrument():
    for instrumentor in INSTRUMENTORS:
        instrumentor.instrument()
def uninstrument():
    for instrumentor in INSTRUMENTORS:
        instrumentor.uninstrument()
def read():
    import h5py, safetensors.numpy
    from tokenizers import Tokenizer
    safetensors.numpy.load_file("in_np.safetensors")
    h5py.File("in.h5").close()
    return Tokenizer.from_file("tokenizer.json").get_vocab_size()
"""
INPUTS = ("in_np.safetensors", "in.h5", "tokenizer.json")


def hooks_case(body: str, base_env: dict, workdir: Path) -> dict:
    make_weights(workdir)
    make_hdf5(workdir)
    make_tokenizer_files(workdir)
    return library_case(HOOKS, body, base_env, workdir)


def read_uris(outcome: dict) -> list[str]:
    return [uri for s in io_spans(outcome) for uri in s["attributes"].get(attr.PROVENANCE_ARTIFACTS_URI, [])]


def test_instrumentors_uninstrumented_restore_the_libraries(base_env, workdir, spool):
    """uninstrument() puts the libraries' own functions back and records nothing, also
    through a name a module bound while they were wrapped (`from safetensors import
    safe_open`); instrumenting again, with the libraries imported, patches them at once."""
    outcome = hooks_case("""
        import h5py, safetensors, safetensors.numpy, tokenizers
        originals = lambda: (safetensors.safe_open, safetensors.numpy.load_file,
                             h5py.File.__init__, tokenizers.Tokenizer.from_file,
                             tokenizers.Tokenizer.save, tokenizers.models.Model.save)
        before = originals()
        instrument()
        patched = [a is not b for a, b in zip(originals(), before)]
        from safetensors import safe_open as bound_while_wrapped
        uninstrument()
        restored = [a is b for a, b in zip(originals(), before)]
        read()
        bound_while_wrapped("in_np.safetensors", framework="np")
        instrument()
        read()
        finish(patched=patched, restored=restored)
        """, base_env, workdir)

    assert outcome["patched"] == [True] * 6
    assert outcome["restored"] == [True] * 6
    assert sorted(read_uris(outcome)) == sorted(spool.uri(workdir / name) for name in INPUTS)
    # Each file read once: the reads after uninstrument() were not recorded.
    for span in io_spans(outcome):
        attributes = span["attributes"]
        assert attributes[attr.PROVENANCE_IO_COUNT] == len(attributes[attr.PROVENANCE_ARTIFACTS_URI])


def test_instrumentors_pass_the_libraries_errors_through(base_env, workdir):
    """Missing and corrupt files raise exactly what they raise without clew; a missing file
    is not recorded."""
    (workdir / "not.safetensors").write_bytes(b"not safetensors")
    (workdir / "not.h5").write_bytes(b"not hdf5")
    (workdir / "not.json").write_text("{")

    outcome = hooks_case("""
        import h5py, safetensors, safetensors.numpy
        from tokenizers import Tokenizer
        calls = {
            "safe_open missing": lambda: safetensors.safe_open("missing.safetensors", "np"),
            "load_file corrupt": lambda: safetensors.numpy.load_file("not.safetensors"),
            "h5py missing": lambda: h5py.File("missing.h5"),
            "h5py corrupt": lambda: h5py.File("not.h5", "r+"),
            "h5py bad mode": lambda: h5py.File("in.h5", "rw"),
            "from_file missing": lambda: Tokenizer.from_file("missing.json"),
            "from_file corrupt": lambda: Tokenizer.from_file("not.json"),
            "train missing": lambda: Tokenizer.from_file("tokenizer.json").train(["missing.txt"]),
        }
        before = {name: failure(call) for name, call in calls.items()}
        instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """, base_env, workdir)

    assert outcome["after"] == outcome["before"]
    assert all(outcome["before"].values()), outcome["before"]
    assert outcome["before"]["h5py missing"][0] == "FileNotFoundError"
    assert not any("missing" in uri for uri in read_uris(outcome))


def test_a_program_that_never_imports_them_does_not_import_them(run_instrumented):
    result = run_instrumented("""
        import sys
        names = ("safetensors", "h5py", "tokenizers", "datasets", "transformers")
        print(sorted(m for m in names if m in sys.modules))
        """)

    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
