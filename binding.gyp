{
  "variables": {
    "usrbio_cflags": ["-O2", "-g", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter",
                      "-Wno-missing-field-initializers", "-D_GNU_SOURCE"]
  },
  "targets": [
    {
      "target_name": "hf3fs_usrbio",
      "type": "shared_library",
      "product_name": "hf3fs_usrbio",
      "product_prefix": "lib",
      "sources": [
        "native/src/util.cc",
        "native/src/shm.cc",
        "native/src/memreg.cc",
        "native/src/regfd.cc",
        "native/src/agent.cc",
        "native/src/exec_uring.cc",
        "native/src/exec_pool.cc",
        "native/src/client_ring.cc",
        "native/src/backend_local.cc",
        "native/src/backend_3fs.cc",
        "native/src/service_host.cc",
        "native/src/service_client.cc",
        "native/src/api.cc"
      ],
      "include_dirs": ["native/include", "native/src"],
      "cflags": ["<@(usrbio_cflags)"],
      "cflags_cc": ["-std=gnu++20", "-fexceptions"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "ldflags": ["-pthread", "-ldl", "-Wl,-soname,libhf3fs_usrbio.so", "-Wl,--no-undefined"]
    },
    {
      "target_name": "usrbio",
      "dependencies": ["hf3fs_usrbio"],
      "sources": ["native/addon/addon.cc", "native/addon/pump.cc", "native/addon/lowlevel.cc", "native/addon/service.cc", "native/addon/inline_read.cc", "native/addon/direct_read.cc", "native/addon/pool.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/include"],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags": ["-O2", "-g", "-fvisibility=hidden"],
      "cflags_cc": ["-std=gnu++20"],
      "cflags_cc!": ["-std=gnu++17"],
      "libraries": ["-L<(PRODUCT_DIR)", "-lhf3fs_usrbio"],
      # -z nodelete: Node dlcloses an addon a worker thread loaded when that worker exits, before
      # its isolate frees the ArrayBuffers whose deleters and weak callbacks are in this library
      # (pool.cc, Iov.slice): unloaded, they crashed the process at the worker's exit.
      "ldflags": ["-Wl,-rpath,'$$ORIGIN'", "-Wl,-z,nodelete"]
    }
  ]
}
