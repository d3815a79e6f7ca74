"""C++ and gRPC code generation from .proto files with the system protoc."""

def shoal_proto_library(name, srcs, deps = [], grpc = False):
    """Generates C++ (and with grpc=True, gRPC service) code for `srcs`.

    Defines `name`, a cc_library. `srcs` are paths below this package, such as
    "shoal/v1/manifest.proto"; generated headers are included the same way:
    "shoal/v1/manifest.pb.h". `deps` are other shoal_proto_library targets.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    grpc_flags = ""
    tools = ["@com_google_protobuf_compiler//:protoc"]
    if grpc:
        tools.append("@com_google_protobuf_compiler//:grpc_cpp_plugin")
        grpc_flags = ("--grpc_out=$(GENDIR)/%s " % native.package_name() +
                      "--plugin=protoc-gen-grpc=$(location @com_google_protobuf_compiler//:grpc_cpp_plugin) ")
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        tools = tools,
        cmd = ("$(location @com_google_protobuf_compiler//:protoc) " +
               "--proto_path=%s " % native.package_name() +
               "--cpp_out=$(GENDIR)/%s " % native.package_name() +
               grpc_flags +
               " ".join(["%s/%s" % (native.package_name(), s) for s in srcs])),
    )
    native.filegroup(name = name + "_srcs", srcs = srcs)
    lib_deps = ["@com_google_protobuf//:protobuf"]
    if grpc:
        lib_deps.append("@com_github_grpc_grpc//:grpc++")
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + lib_deps,
        visibility = ["//visibility:public"],
    )
