"""protoc-gen-gorums: call types by upstream's rules, refusals, output, the shipped gorums.proto."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from gorums_mw import Configuration, Node
from gorums_mw.codegen import GenerationError, generate, include_dir, main
from gorums_mw.codegen._calltypes import FORWARDED, OVERLOADED, CallType
from gorums_mw.codegen._model import call_type
from gorums_mw.proto import gorums_pb2

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLUGIN = Path(sysconfig.get_path("scripts")) / "protoc-gen-gorums"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
BIN = Path(sys.executable).parent


def protoc(
    out: Path, *files: str, includes: tuple[Path, ...] = (), mypy: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run protoc with the installed plugin (and ``--python_out``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{include}" for include in includes),
        f"-I{include_dir()}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-gorums={PLUGIN}",
        f"--gorums_out={out}",
        f"--python_out={out}",
    ]
    if mypy:
        args += [f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}", f"--mypy_out={out}"]
    return subprocess.run([*args, *files], capture_output=True, text=True, timeout=60, check=False)


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def method(
    *options: str, client_streaming: bool = False, server_streaming: bool = False
) -> descriptor_pb2.MethodDescriptorProto:
    proto = descriptor_pb2.MethodDescriptorProto(
        name="M",
        input_type=".p.Req",
        output_type=".p.Rep",
        client_streaming=client_streaming,
        server_streaming=server_streaming,
    )
    for option in options:
        name, _, value = option.partition("=")
        proto.options.Extensions[getattr(gorums_pb2, name)] = value != "false"
    return proto


# ---- call types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "streaming", "expected"),
    [
        ((), "", CallType.RPC),
        (("rpc",), "", CallType.RPC),
        (("unicast",), "", CallType.UNICAST),
        (("multicast",), "", CallType.MULTICAST),
        (("quorumcall",), "", CallType.QUORUM_CALL),
        (("quorumcall",), "server", CallType.CORRECTABLE),
        (("rpc", "quorumcall"), "", CallType.QUORUM_CALL),  # rpc counts only alone
        (("quorumcall=false",), "", CallType.RPC),  # an option set to false is no option
        ((), "server", "option (gorums.quorumcall) is required for server-streaming"),
        (("multicast",), "server", "option (gorums.quorumcall) is required"),
        (("rpc",), "server", "option (gorums.quorumcall) is required"),
        ((), "client", "option (gorums.multicast) is required for client-streaming"),
        (("quorumcall",), "client", "option (gorums.multicast) is required"),
        (("multicast",), "client", "client-streaming multicast: gorums-mw calls and serves"),
        (("multicast",), "both", "client-streaming multicast"),
        (("quorumcall", "multicast"), "", "(gorums.multicast) and (gorums.quorumcall) cannot"),
        (("unicast", "multicast"), "", "cannot be combined"),
    ],
)
def test_call_type_follows_upstream(
    options: tuple[str, ...], streaming: str, expected: CallType | str
) -> None:
    proto = method(
        *options,
        client_streaming=streaming in ("client", "both"),
        server_streaming=streaming in ("server", "both"),
    )
    if isinstance(expected, CallType):
        assert call_type(proto) is expected
    else:
        with pytest.raises(GenerationError) as refused:
            call_type(proto)
        assert expected in str(refused.value)


def test_refused_methods_are_all_listed_and_protoc_fails(tmp_path: Path) -> None:
    source = write(
        tmp_path / "src",
        {
            "bad.proto": """
                syntax = "proto3";
                package bad;
                import "gorums.proto";
                message M {}
                service S {
                  rpc Fine(M) returns (M);
                  rpc Feed(M) returns (stream M);
                  rpc Sink(stream M) returns (M);
                  rpc Both(M) returns (M) { option (gorums.quorumcall) = true;
                                            option (gorums.unicast) = true; }
                  rpc replies(M) returns (M);
                  rpc None(M) returns (M);
                }
            """
        },
    )
    result = protoc(tmp_path / "out", "bad.proto", includes=(source,))
    assert result.returncode != 0
    assert "--gorums_out: bad.proto: bad.S.Feed: option (gorums.quorumcall)" in result.stderr
    for name in ("Sink", "Both", "replies", "None"):
        assert f"bad.proto: bad.S.{name}: " in result.stderr
    assert "bad.S.Fine" not in result.stderr
    assert not list((tmp_path / "out").glob("*_gorums.py*"))


# ---- output -------------------------------------------------------------------------------


def test_upstream_storage_proto_compiles_unchanged_and_type_checks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = protoc(out, "storage.proto", "gorums.proto", includes=(HERE / "protos",), mypy=True)
    assert result.returncode == 0, result.stderr
    stub = ast.parse((out / "storage_gorums.pyi").read_text())
    classes = {
        node.name: sorted(
            {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        )
        for node in stub.body
        if isinstance(node, ast.ClassDef)
    }
    assert classes == {
        "StorageConfiguration": sorted(
            [
                "__init__",
                "replies",
                "ReadQC",
                "WriteQC",
                "ReadNestedQC",
                "WriteNestedMulticast",
                "ReadCorrectable",
                "WriteMulticast",
            ]
        ),
        "StorageReplies": sorted(
            ["__init__", "ReadQC", "WriteQC", "ReadNestedQC", "WriteNestedMulticast"]
        ),
        "StorageNode": sorted(["__init__", "ReadRPC", "WriteRPC", "WriteUnicast"]),
    }
    (out / "user.py").write_text(
        textwrap.dedent(
            """
            from gorums_mw import Configuration, Node
            from storage_gorums import StorageConfiguration, StorageNode
            from storage_pb2 import ReadRequest, ReadResponse, WriteRequest


            async def use(config: Configuration, node: Node) -> ReadResponse:
                calls = StorageConfiguration(config)
                await calls.WriteQC(WriteRequest(key="k", value="v"), timeout=1)
                ids: tuple[int, ...] = await calls.WriteMulticast(WriteRequest())
                async for reply in calls.ReadCorrectable(ReadRequest(key="k"), timeout=1):
                    print(reply.node_id, reply.value)
                return await StorageNode(node).ReadRPC(ReadRequest(key="k"))

            print(sorted(m for m in dir(StorageConfiguration) if not m.startswith("_")))
            """
        )
    )
    # ROOT: mypy cannot follow the editable install of gorums_mw.
    env = {**os.environ, "PYTHONPATH": str(out), "MYPYPATH": f"{out}{os.pathsep}{ROOT}"}
    checked = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--no-incremental"),
            f"--config-file={ROOT / 'pyproject.toml'}",
            "user.py",
        ],
        capture_output=True,
        text=True,
        cwd=out,
        env=env,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run(
        [sys.executable, "user.py"],
        capture_output=True,
        text=True,
        cwd=out,
        env=env,
        timeout=60,
        check=True,
    )
    assert "'ReadCorrectable', 'ReadNestedQC', 'ReadQC'" in ran.stdout


def test_names_of_nested_and_imported_types_and_services(tmp_path: Path) -> None:
    source = write(
        tmp_path / "src",
        {
            "a/common.proto": """
                syntax = "proto3";
                package a;
                message Thing { message Part { int32 n = 1; } }
            """,
            "b/common.proto": """
                syntax = "proto3";
                package b;
                message Thing {}
            """,
            "x/svc.proto": """
                syntax = "proto3";
                package x;
                import "a/common.proto";
                import "b/common.proto";
                import "gorums.proto";
                service One {
                  rpc Get(a.Thing.Part) returns (b.Thing) { option (gorums.quorumcall) = true; }
                }
                service Empty {}
                service Two { rpc Get(b.Thing) returns (a.Thing.Part); }
            """,
        },
    )
    out = tmp_path / "out"
    files = ("a/common.proto", "b/common.proto", "x/svc.proto", "gorums.proto")
    result = protoc(out, *files, includes=(source,))
    assert result.returncode == 0, result.stderr
    stub = (out / "x" / "svc_gorums.pyi").read_text()
    assert "from a import common_pb2 as _a_common_pb2" in stub
    assert "from b import common_pb2 as _b_common_pb2" in stub
    assert "request: _a_common_pb2.Thing.Part," in stub
    assert "-> dict[int, _b_common_pb2.Thing]:" in stub
    assert "class OneConfiguration:" in stub and "class TwoNode:" in stub
    assert "Empty" not in stub and "class OneNode" not in stub
    assert not list((out / "a").glob("*_gorums.py*"))  # no services, nothing generated
    ran = subprocess.run(
        [sys.executable, "-c", "from x import svc_gorums as m; print(m._One_Get, m._Two_Get)"],
        capture_output=True,
        text=True,
        cwd=out,
        timeout=60,
        check=True,
    )
    assert ran.stdout.split() == ["x.One.Get", "x.Two.Get"]


def test_output_is_deterministic_and_committed(tmp_path: Path) -> None:
    outputs = []
    for run in ("first", "second"):
        result = protoc(tmp_path / run, "tests/calltypes.proto", includes=(ROOT / "protos",))
        assert result.returncode == 0, result.stderr
        outputs.append(
            [
                (tmp_path / run / "tests" / f"calltypes_gorums{ext}").read_bytes()
                for ext in (".py", ".pyi")
            ]
        )
    committed = [
        (ROOT / "tests" / f"calltypes_gorums{ext}").read_bytes() for ext in (".py", ".pyi")
    ]
    assert outputs[0] == outputs[1] == committed


def test_a_file_without_services_gets_nothing_and_parameters_are_refused() -> None:
    file = descriptor_pb2.FileDescriptorProto(
        name="m.proto", package="m", message_type=[descriptor_pb2.DescriptorProto(name="M")]
    )
    request = plugin_pb2.CodeGeneratorRequest(file_to_generate=["m.proto"], proto_file=[file])
    response = generate(request)
    assert not response.error and not response.file
    assert response.supported_features == (
        plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
    )
    assert response.maximum_edition == descriptor_pb2.EDITION_2024
    request.parameter = "fast"
    assert "takes no parameter" in generate(request).error


# ---- generated module and stub agree; keywords are the string API's ------------------------


def _signatures(tree: ast.Module) -> dict[str, list[tuple[str, str | None]]]:
    found: dict[str, list[tuple[str, str | None]]] = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name != "__repr__":
                args = item.args
                kwonly = [
                    (arg.arg, ast.unparse(default) if default is not None else None)
                    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                ]
                found.setdefault(
                    f"{cls.name}.{item.name}", [(a.arg, None) for a in args.args] + kwonly
                )
    return found


@pytest.mark.parametrize(
    "module",
    sorted(
        str(path.relative_to(ROOT))
        for path in ROOT.glob("*/*_gorums.py")
        if not path.is_relative_to(ROOT / ".venv")
    ),
)
def test_module_and_stub_have_the_same_signatures(module: str) -> None:
    runtime = _signatures(ast.parse((ROOT / module).read_text()))
    stub = _signatures(ast.parse((ROOT / module).with_suffix(".pyi").read_text()))
    assert runtime == stub
    assert runtime


@pytest.mark.parametrize("api", sorted(FORWARDED))
def test_forwarded_keywords_are_the_string_apis(api: str) -> None:
    owner = Node if api in ("rpc", "unicast") else Configuration
    parameters = inspect.signature(getattr(owner, api)).parameters.values()
    keywords = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    before, after = OVERLOADED.get(api, ((), ()))
    generated = [*before, *(k.name for k in FORWARDED[api]), *after]
    assert sorted(generated) == sorted(keywords), (
        f"{owner.__name__}.{api} takes {keywords}: add the new keyword to"
        " gorums_mw/codegen/_calltypes.py and run scripts/gen-protos"
    )


# ---- the shipped gorums.proto ------------------------------------------------------------


def test_include_dir_holds_upstreams_gorums_proto(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--include-dir"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == include_dir()
    assert (Path(printed) / "gorums.proto").is_file()
    numbers = {
        name: getattr(gorums_pb2, name).number
        for name in ("rpc", "unicast", "multicast", "quorumcall")
    }
    assert numbers == {"rpc": 50001, "unicast": 50002, "multicast": 50003, "quorumcall": 50004}
    assert gorums_pb2.DESCRIPTOR.name == "gorums.proto"
    assert gorums_pb2.DESCRIPTOR.package == "gorums"
    ran = subprocess.run(
        [sys.executable, "-m", "gorums_mw.codegen", "--include-dir"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ran.stdout.strip() == printed


def test_public_names_are_exported_and_documented() -> None:
    import gorums_mw.codegen as codegen

    public = {name for name in dir(codegen) if not name.startswith("_")}
    public -= {name for name in public if inspect.ismodule(getattr(codegen, name))}
    assert set(codegen.__all__) == public
    for name in codegen.__all__:
        assert inspect.getdoc(getattr(codegen, name)), name
