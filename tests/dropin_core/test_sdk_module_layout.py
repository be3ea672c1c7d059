"""`import nbsage as sagemaker`: the SDK's module paths and import statements resolve to nbsage,
in a fresh interpreter (nothing imported before), without torch, xgboost or pandas at import."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, code: str, blocked_sdk: bool = True) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; with blocked_sdk, a `sagemaker` package that raises when
    imported comes first on the path, so nothing can fall through to the real SDK."""
    path = [str(ROOT)]
    if blocked_sdk:
        fake = tmp_path / "blocked"
        (fake / "sagemaker").mkdir(parents=True, exist_ok=True)
        (fake / "sagemaker" / "__init__.py").write_text("raise ImportError('the real SDK was imported')\n")
        path.insert(0, str(fake))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)


def test_sdk_module_paths_resolve_without_an_import_of_their_own_and_nothing_heavy_is_imported(tmp_path):
    result = run(tmp_path, """
        import sys
        import nbsage as sagemaker
        assert not {"torch", "xgboost", "pandas", "dask", "matplotlib"} & set(sys.modules), sys.modules.keys()
        assert sagemaker.estimator.Estimator.__module__ == "nbsage.estimator"
        assert sagemaker.inputs.TrainingInput and sagemaker.predictor.Predictor
        assert sagemaker.serializers.CSVSerializer and sagemaker.deserializers.BytesDeserializer
        assert sagemaker.session.Session is sagemaker.Session and sagemaker.session.s3_input
        assert sagemaker.amazon.amazon_estimator.get_image_uri and sagemaker.amazon.common.read_records
        assert sagemaker.amazon.common.write_numpy_to_dense_tensor
        assert sagemaker.image_uris.retrieve and sagemaker.s3.S3Downloader and sagemaker.s3.S3Uploader
        assert sagemaker.utils.name_from_base("job").startswith("job-")
        assert sagemaker.model_monitor.DataCaptureConfig
        try:
            sagemaker.no_such_module
        except AttributeError as e:
            assert "no attribute 'no_such_module'" in str(e)
        else:
            raise AssertionError("no AttributeError")
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_sdk_import_statements_resolve_to_nbsage_where_the_code_chose_it(tmp_path):
    result = run(tmp_path, """
        import nbsage as sagemaker
        from sagemaker import get_execution_role, image_uris
        import sagemaker.amazon.common as smac
        from sagemaker.inputs import TrainingInput
        from sagemaker.serializers import CSVSerializer
        import nbsage
        assert smac is nbsage.amazon.common and TrainingInput is nbsage.inputs.TrainingInput
        assert image_uris is nbsage.image_uris and CSVSerializer is nbsage.serializers.CSVSerializer
        assert smac.__spec__.name == "nbsage.amazon.common"  # nbsage's module keeps its own spec
        assert get_execution_role().startswith("arn:aws:iam::")
        try:
            from sagemaker.not_a_module import x
        except ModuleNotFoundError as e:
            print(e)
    """)
    assert result.returncode == 0, result.stderr
    assert "No module named 'sagemaker.not_a_module': nbsage (imported as sagemaker) has no" in result.stdout


def test_code_that_did_not_choose_nbsage_still_imports_the_real_sdk(tmp_path):
    result = run(tmp_path, """
        import nbsage
        try:
            import sagemaker
        except ImportError as e:
            print(e)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the real SDK was imported"
