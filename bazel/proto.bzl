"""C++ protobuf/gRPC code generation with Debian's /usr/bin/protoc and
/usr/bin/grpc_cpp_plugin (no @com_google_protobuf, no @com_github_grpc_grpc,
so nothing is downloaded).

    system_cc_proto_library(
        name = "hello_cc_proto",
        srcs = ["hello.proto"],        # .proto files in this package
        grpc = True,                   # also emit *.grpc.pb.{h,cc}
        proto_deps = ["//other:protos"],  # other .proto files imported (filegroups / files)
        deps = ["//other:other_cc_proto"], # their generated cc libraries
    )

Imports are resolved relative to the workspace root (`import "proto/x.proto";`),
and google/protobuf/*.proto well-known types come from /usr/include (protoc's
default path). Generated headers are included as "proto/hello.pb.h".
"""

PROTOC = "/usr/bin/protoc"
GRPC_CPP_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def system_cc_proto_library(name, srcs, grpc = False, proto_deps = [], deps = [], visibility = None, **kwargs):
    outs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("system_cc_proto_library: %s is not a .proto file" % src)
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    cmd = PROTOC + " --proto_path=. --cpp_out=$(GENDIR)"
    if grpc:
        cmd += " --plugin=protoc-gen-grpc=" + GRPC_CPP_PLUGIN + " --grpc_out=$(GENDIR)"
    cmd += " " + " ".join(["$(location %s)" % s for s in srcs])

    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = cmd,
        message = "protoc %s" % name,
        visibility = ["//visibility:private"],
    )

    lib_deps = ["@protobuf"]
    if grpc:
        lib_deps.append("@grpcpp")

    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + lib_deps,
        visibility = visibility,
        **kwargs
    )
