// service.cc - the usrbio service in JS: Service (usrbio_service_start/stop/get_stats, its log
// lines delivered to a JS callback on the main thread), serviceQuery, serviceSocket,
// serviceOverride.
#include <string>

#include "addon.h"
#include "usrbio_ext.h"

namespace usrbio_addon {
namespace {

Napi::Object stats_object(Napi::Env env, const usrbio_service_stats &s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("clients", double(s.clients));
  set_agent_counts(o, s);
  o.Set("iops", double(s.iops));
  o.Set("bytesPerSec", double(s.bytes_per_sec));
  o.Set("uptimeMs", double(s.uptime_ms));
  o.Set("pid", double(s.pid));
  o.Set("maxClients", double(s.max_clients));
  o.Set("executor", std::string(s.executor, strnlen(s.executor, sizeof s.executor)));
  o.Set("dir", std::string(s.dir, strnlen(s.dir, sizeof s.dir)));
  return o;
}

struct LogLine {
  int level;
  std::string json;
};

// Service(dir, threads, executor, maxClients, log(level, json)): a running service; stop()
// ends it (also done by the environment's cleanup). The arguments were validated in TS.
class Service : public Napi::ObjectWrap<Service>, public Owned {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) {
    return DefineClass(env, "Service",
                       {InstanceMethod("stop", &Service::Stop), InstanceMethod("stats", &Service::Stats)}, state);
  }
  explicit Service(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Service>(info) {
    Napi::Env env = info.Env();
    state_ = static_cast<EnvState *>(info.Data());
    std::string dir = info[0].As<Napi::String>().Utf8Value();
    std::string exec = info[2].As<Napi::String>().Utf8Value();
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[4].As<Napi::Function>(), "usrbio-service-log", 0, 1);
    usrbio_service_options o{};
    o.dir = dir.c_str();
    o.threads = info[1].As<Napi::Number>().Int32Value();
    o.executor = exec.c_str();
    o.max_clients = info[3].As<Napi::Number>().Int32Value();
    o.log = &Service::Log;
    o.log_ctx = this;
    int r = usrbio_service_start(&o, &handle_);
    if (r < 0) {
      tsfn_.Release();
      errno_error(env, -r, "usrbio_service_start").ThrowAsJavaScriptException();
      return;
    }
    state_->owned.insert(this);
  }
  ~Service() override { release(); }

  // Stop the service (blocks until in-flight I/O finished and every client is disconnected).
  void release() override {
    if (!handle_) return;
    usrbio_service_stop(handle_);
    handle_ = nullptr;
    tsfn_.Release();
    state_->owned.erase(this);
  }

 private:
  // The service thread's log sink: queue the line for the main thread (never blocks).
  static void Log(void *ctx, int level, const char *json) {
    auto *self = static_cast<Service *>(ctx);
    auto *line = new LogLine{level, json};
    napi_status s = self->tsfn_.NonBlockingCall(line, [](Napi::Env env, Napi::Function fn, LogLine *l) {
      if (env != nullptr && fn != nullptr) fn.Call({Napi::Number::New(env, l->level), Napi::String::New(env, l->json)});
      delete l;
    });
    if (s != napi_ok) delete line;
  }
  Napi::Value Stop(const Napi::CallbackInfo &info) {
    release();
    return info.Env().Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo &info) {
    if (!handle_) {
      Napi::Error::New(info.Env(), "the service was stopped").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    usrbio_service_stats s;
    usrbio_service_get_stats(handle_, &s);
    return stats_object(info.Env(), s);
  }

  EnvState *state_ = nullptr;
  void *handle_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
};

// serviceQuery(path) -> stats object, or a negative errno.
Napi::Value ServiceQuery(const Napi::CallbackInfo &info) {
  std::string p = info[0].As<Napi::String>().Utf8Value();
  usrbio_service_stats s;
  int r = usrbio_service_query(p.c_str(), &s);
  if (r < 0) return Napi::Number::New(info.Env(), r);
  return stats_object(info.Env(), s);
}

// serviceSocket(dir) -> path, or a negative errno.
Napi::Value ServiceSocket(const Napi::CallbackInfo &info) {
  std::string d = info[0].As<Napi::String>().Utf8Value();
  char out[256];
  int r = usrbio_service_socket(d.c_str(), out, sizeof out);
  if (r < 0) return Napi::Number::New(info.Env(), r);
  return Napi::String::New(info.Env(), out);
}

// serviceOverride(mount, spec | null) -> 0 or a negative errno.
Napi::Value ServiceOverride(const Napi::CallbackInfo &info) {
  std::string m = info[0].As<Napi::String>().Utf8Value();
  if (info[1].IsNull() || info[1].IsUndefined())
    return Napi::Number::New(info.Env(), usrbio_service_override(m.c_str(), nullptr));
  std::string s = info[1].As<Napi::String>().Utf8Value();
  return Napi::Number::New(info.Env(), usrbio_service_override(m.c_str(), s.c_str()));
}

}  // namespace

void RegisterService(Napi::Env env, Napi::Object exports, EnvState *state) {
  exports.Set("Service", Service::Define(env, state));
  exports.Set("serviceQuery", Napi::Function::New(env, ServiceQuery, "serviceQuery"));
  exports.Set("serviceSocket", Napi::Function::New(env, ServiceSocket, "serviceSocket"));
  exports.Set("serviceOverride", Napi::Function::New(env, ServiceOverride, "serviceOverride"));
}

}  // namespace usrbio_addon
