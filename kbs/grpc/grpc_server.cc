#include "kbs/grpc/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fiber.h"
#include "common/files.h"
#include "common/json.h"
#include "kbs/core/errors.h"
#include "proto/kbs/v1/kbs.grpc.pb.h"

namespace kbs::grpc_api {
namespace {

using common::Json;

// Completes a callback-API unary call (the Admin service) with `status`
// mapped to gRPC; the reference error variant goes in a trailer.
::grpc::ServerUnaryReactor* Finish(::grpc::CallbackServerContext* context,
                                   const absl::Status& status) {
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (status.ok()) {
    reactor->Finish(::grpc::Status::OK);
  } else {
    context->AddTrailingMetadata("kbs-error-type",
                                 std::string(ErrorKindName(GetErrorKind(status))));
    reactor->Finish(::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                                   std::string(status.message())));
  }
  return reactor;
}

std::string Metadata(::grpc::CallbackServerContext* context, const char* key) {
  auto it = context->client_metadata().find(key);
  if (it == context->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

std::string AdminToken(::grpc::CallbackServerContext* context) {
  std::string value = Metadata(context, "authorization");
  absl::string_view v = absl::StripAsciiWhitespace(value);
  if (v.size() > 7 && absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
    return std::string(absl::StripAsciiWhitespace(v.substr(7)));
  }
  return "";
}

absl::Status BadJson(absl::string_view field, const absl::Status& s) {
  return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                  absl::StrCat("`", field, "`: ", s.message()));
}

void FillSigningKeys(const std::vector<token::SigningKeyInfo>& keys,
                     v1::TokenSigningKeysResponse& out) {
  auto rfc3339 = [](const std::optional<absl::Time>& t) {
    return t.has_value() ? absl::FormatTime(absl::RFC3339_sec, *t, absl::UTCTimeZone())
                         : std::string();
  };
  for (const token::SigningKeyInfo& info : keys) {
    v1::TokenSigningKey* k = out.add_keys();
    k->set_kid(info.kid);
    k->set_state(std::string(token::SigningKeyStateName(info.state)));
    k->set_created(rfc3339(info.created));
    k->set_activated(rfc3339(info.activated));
    k->set_retired(rfc3339(info.retired));
    k->set_published_until(rfc3339(info.published_until));
  }
}

void FillMetadata(const keystore::ResourceMetadata& md, v1::ResourceMetadata* out) {
  out->set_path(md.path);
  out->set_size(md.size);
  out->set_sha256(md.sha256_hex);
  out->set_created_at(absl::ToUnixSeconds(md.created));
  out->set_updated_at(absl::ToUnixSeconds(md.updated));
  out->set_version(md.version);
  out->set_latest_version(md.latest_version);
}

void FillVersion(const keystore::ResourceVersion& v, v1::ResourceVersion* out) {
  out->set_version(v.version);
  out->set_state(std::string(keystore::VersionStateName(v.state)));
  out->set_size(v.size);
  out->set_sha256(v.sha256_hex);
  out->set_kek(v.kek_id);
  out->set_created_at(absl::ToUnixSeconds(v.created));
  out->set_updated_at(absl::ToUnixSeconds(v.updated));
}

// KeyBroker handlers: decode, call the broker, encode. Auth and GetJwks run
// inline on the completion-queue threads, Attest and GetResource on the
// worker pool (see AsyncUnaryCall).
absl::Status HandleAuth(Broker& broker, const ::grpc::ServerContext&,
                        const v1::AuthRequest& request, v1::AuthResponse& response) {
  AuthRequest req{request.version(), request.tee(), Json("")};
  if (!request.extra_params_json().empty()) {
    auto extra = common::ParseJson(request.extra_params_json());
    if (!extra.ok()) return BadJson("extra_params_json", extra.status());
    req.extra_params = *std::move(extra);
  }
  auto auth = broker.Auth(req);
  if (!auth.ok()) return auth.status();
  response.set_session_id(auth->session_id);
  response.set_nonce(auth->nonce);
  response.set_extra_params_json(common::DumpJson(auth->extra_params));
  response.set_expires_at(absl::ToUnixSeconds(auth->expires));
  return absl::OkStatus();
}

absl::Status HandleAttest(Broker& broker, const ::grpc::ServerContext& context,
                          const v1::AttestRequest& request, v1::AttestResponse& response) {
  AttestRequest req;
  req.nonce = request.nonce();
  auto pubkey = common::ParseJson(request.tee_pubkey_json());
  if (!pubkey.ok()) return BadJson("tee_pubkey_json", pubkey.status());
  req.tee_pubkey = *std::move(pubkey);
  auto evidence = common::ParseJson(request.primary_evidence_json());
  if (!evidence.ok()) return BadJson("primary_evidence_json", evidence.status());
  req.primary_evidence = *std::move(evidence);
  req.additional_evidence = request.additional_evidence();
  if (request.has_init_data()) {
    req.init_data = InitDataSpec{request.init_data().format(), request.init_data().body()};
  }
  auto attest = broker.Attest(request.session_id(), req, context.peer());
  if (!attest.ok()) return attest.status();
  response.set_token(attest->token);
  response.set_expires_at(absl::ToUnixSeconds(attest->token_expires));
  return absl::OkStatus();
}

absl::Status HandleGetResource(Broker& broker, const ::grpc::ServerContext& context,
                               const v1::GetResourceRequest& request,
                               v1::GetResourceResponse& response) {
  Credentials creds{request.session_id(), request.token(), context.peer()};
  std::optional<int64_t> version;
  if (request.version() < 0) {
    return absl::InvalidArgumentError("version must be positive (0 for the latest)");
  }
  if (request.version() > 0) version = request.version();
  auto released = broker.GetResource(creds, request.path(), version);
  if (!released.ok()) return released.status();
  const jose::FlattenedJwe* jwe = &released->jwe;
  response.set_version(released->version);
  v1::Jwe* out = response.mutable_jwe();
  out->set_protected_(jwe->protected_header);
  out->set_encrypted_key(jwe->encrypted_key);
  out->set_iv(jwe->iv);
  out->set_ciphertext(jwe->ciphertext);
  out->set_tag(jwe->tag);
  response.set_jwe_json(jwe->ToJsonString());
  return absl::OkStatus();
}

absl::Status HandleGetJwks(Broker& broker, const ::grpc::ServerContext&, const v1::GetJwksRequest&,
                           v1::GetJwksResponse& response) {
  response.set_jwks_json(common::DumpJson(broker.Jwks()));
  return absl::OkStatus();
}

// Counts every call of the KBS's services that reaches a handler (or the
// in-progress limit) into the /metrics families
// kbs_grpc_requests_total{method,code} and
// kbs_grpc_request_duration_seconds{method} (from when gRPC hands the call
// over, its request read, to its status). Admin and Audit calls count as
// one method each; other services (health checks) are not counted. Calls
// gRPC refuses itself (oversized or unparsable messages) are not seen;
// calls the client cancelled count with the status the handler gave.
class MetricsInterceptor final : public ::grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(http::Metrics* metrics, http::GrpcMethod method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(::grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            ::grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const auto elapsed = std::chrono::steady_clock::now() - start_;
      metrics_->RecordGrpc(method_, static_cast<int>(methods->GetSendStatus().error_code()),
                           absl::FromChrono(elapsed));
    }
    methods->Proceed();
  }

 private:
  http::Metrics* metrics_;
  http::GrpcMethod method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public ::grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(http::Metrics* metrics) : metrics_(metrics) {}

  ::grpc::experimental::Interceptor* CreateServerInterceptor(
      ::grpc::experimental::ServerRpcInfo* info) override {
    std::optional<http::GrpcMethod> method = MethodOf(info->method());
    if (!method.has_value()) return nullptr;
    return new MetricsInterceptor(metrics_, *method);
  }

  static std::optional<http::GrpcMethod> MethodOf(absl::string_view name) {
    if (absl::StartsWith(name, "/kbs.v1.Admin/")) return http::GrpcMethod::kAdmin;
    if (absl::StartsWith(name, "/kbs.v1.Audit/")) return http::GrpcMethod::kAudit;
    if (!absl::ConsumePrefix(&name, "/kbs.v1.KeyBroker/")) return std::nullopt;
    if (name == "Auth") return http::GrpcMethod::kAuth;
    if (name == "Attest") return http::GrpcMethod::kAttest;
    if (name == "GetResource") return http::GrpcMethod::kGetResource;
    if (name == "GetJwks") return http::GrpcMethod::kGetJwks;
    return std::nullopt;
  }

 private:
  http::Metrics* metrics_;
};

// A completion-queue event.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// Runs the KeyBroker handlers that wait for a durable receipt (Attest,
// GetResource) off the completion-queue threads, each on a fiber of its own
// over a few threads, as the HTTP server runs its handlers: while a handler
// waits for its group commit, its fiber is suspended and the thread runs
// other calls, so a group commit holds every call waiting at that moment.
// Run inline, such a handler would hold its queue's thread for a whole
// group commit, and the calls of one connection (which gRPC delivers to one
// queue) would commit one by one instead of in batches.
class FiberWorkers {
 public:
  enum class Refusal { kNone, kOverloaded, kStopping };

  FiberWorkers(int threads, int max_in_progress) : max_in_progress_(max_in_progress) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.push_back(boost::asio::make_work_guard(*contexts_.back()));
    }
    for (auto& io : contexts_) {
      threads_.emplace_back([io = io.get()] {
        pthread_setname_np(pthread_self(), "kbs-grpc-work");
        io->run();
      });
    }
  }
  ~FiberWorkers() { Stop(); }

  // Runs `handle` on a fiber, then `respond` with its status; refuses once
  // max_in_progress calls are in progress (each holds a fiber stack; the
  // caller answers RESOURCE_EXHAUSTED rather than map stacks without bound)
  // or once stopping. A call stops counting before its response is sent:
  // the client's next call may arrive before this fiber has finished.
  Refusal Submit(std::function<absl::Status()> handle,
                 std::function<void(const absl::Status&)> respond) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Refusal::kStopping;
      if (in_progress_ >= max_in_progress_) return Refusal::kOverloaded;
      ++in_progress_;
    }
    boost::asio::io_context* io =
        contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()].get();
    boost::asio::post(
        *io, [this, io, handle = std::move(handle), respond = std::move(respond)]() mutable {
          common::Fiber::Start(
              [this, handle = std::move(handle), respond = std::move(respond)] {
                const absl::Status status = handle();
                Finished();
                // Stop may no longer wait for this call, but joins this thread
                // only once it has run this to the end.
                respond(status);
              },
              [io](std::function<void()> resume) { boost::asio::post(*io, std::move(resume)); });
        });
    return Refusal::kNone;
  }

  int max_in_progress() const { return max_in_progress_; }

  // Refuses new calls, waits for those in progress (a suspended fiber is no
  // work its thread sees, so the threads must run until the last one
  // finished), then joins the threads.
  void Stop() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      idle_.wait(lock, [&] { return in_progress_ == 0; });
    }
    guards_.clear();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

  void Finished() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--in_progress_ == 0) idle_.notify_all();
  }

  const int max_in_progress_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<WorkGuard> guards_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
  std::mutex mu_;
  std::condition_variable idle_;
  int in_progress_ = 0;
  bool stopping_ = false;
};

// One unary KeyBroker call on the async API. Handlers that never block
// (Auth, GetJwks) run inline on the thread that polls the completion queue:
// on a small machine this avoids the thread hand-offs (futex wake-ups) of
// the sync and callback servers, which cost more than the protocol work
// itself. Handlers that wait for a receipt run on fibers (`pool`).
template <typename Req, typename Resp>
class AsyncUnaryCall final : public Tag {
 public:
  using RequestFn = void (v1::KeyBroker::AsyncService::*)(::grpc::ServerContext*, Req*,
                                                          ::grpc::ServerAsyncResponseWriter<Resp>*,
                                                          ::grpc::CompletionQueue*,
                                                          ::grpc::ServerCompletionQueue*, void*);
  using Handler = absl::Status (*)(Broker&, const ::grpc::ServerContext&, const Req&, Resp&);

  // Registers to receive the next call of this method on `cq`, unless the
  // server is stopping (a shut-down queue takes no new operations).
  static void Arm(v1::KeyBroker::AsyncService* service, RequestFn request, Handler handler,
                  Broker* broker, ::grpc::ServerCompletionQueue* cq,
                  const std::atomic<bool>* stopping, FiberWorkers* pool = nullptr) {
    if (stopping->load()) return;
    auto* call = new AsyncUnaryCall(service, request, handler, broker, cq, stopping, pool);
    (service->*request)(&call->context_, &call->request_, &call->responder_, cq, cq, call);
  }

  void Proceed(bool ok) override {
    if (!ok || finishing_) {
      // Shutdown before a call arrived, or the response was sent.
      delete this;
      return;
    }
    Arm(service_, request_fn_, handler_, broker_, cq_, stopping_, pool_);
    if (pool_ == nullptr) {
      Handle();
      return;
    }
    switch (pool_->Submit([this] { return handler_(*broker_, context_, request_, response_); },
                          [this](const absl::Status& status) { Respond(status); })) {
      case FiberWorkers::Refusal::kNone:
        break;
      case FiberWorkers::Refusal::kOverloaded:
        Respond(KbsError(absl::StatusCode::kResourceExhausted, ErrorKind::kPluginInternalError,
                         absl::StrCat("the KBS has ", pool_->max_in_progress(),
                                      " calls in progress; retry later")));
        break;
      case FiberWorkers::Refusal::kStopping:
        Respond(KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPluginInternalError,
                         "the KBS is stopping"));
        break;
    }
  }

 private:
  AsyncUnaryCall(v1::KeyBroker::AsyncService* service, RequestFn request, Handler handler,
                 Broker* broker, ::grpc::ServerCompletionQueue* cq,
                 const std::atomic<bool>* stopping, FiberWorkers* pool)
      : service_(service),
        request_fn_(request),
        handler_(handler),
        broker_(broker),
        cq_(cq),
        stopping_(stopping),
        pool_(pool),
        responder_(&context_) {}

  // Runs the handler and starts sending the response; the queue's thread
  // then sees the finished send (Proceed with finishing_ set).
  void Handle() { Respond(handler_(*broker_, context_, request_, response_)); }

  void Respond(const absl::Status& status) {
    finishing_ = true;
    if (status.ok()) {
      responder_.Finish(response_, ::grpc::Status::OK, this);
    } else {
      context_.AddTrailingMetadata("kbs-error-type",
                                   std::string(ErrorKindName(GetErrorKind(status))));
      responder_.FinishWithError(::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                                                std::string(status.message())),
                                 this);
    }
  }

  v1::KeyBroker::AsyncService* service_;
  RequestFn request_fn_;
  Handler handler_;
  Broker* broker_;
  ::grpc::ServerCompletionQueue* cq_;
  const std::atomic<bool>* stopping_;
  FiberWorkers* pool_;
  ::grpc::ServerContext context_;
  Req request_;
  Resp response_;
  ::grpc::ServerAsyncResponseWriter<Resp> responder_;
  bool finishing_ = false;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(Broker* broker) : broker_(broker) {}

  ::grpc::ServerUnaryReactor* PutResource(::grpc::CallbackServerContext* context,
                                          const v1::PutResourceRequest* request,
                                          v1::ResourceMetadata* response) override {
    auto md = broker_->PutResource(AdminToken(context), request->path(), request->value());
    if (!md.ok()) return Finish(context, md.status());
    FillMetadata(*md, response);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* DeleteResource(::grpc::CallbackServerContext* context,
                                             const v1::DeleteResourceRequest* request,
                                             v1::DeleteResourceResponse*) override {
    return Finish(context, broker_->DeleteResource(AdminToken(context), request->path()));
  }

  ::grpc::ServerUnaryReactor* ListResourceVersions(
      ::grpc::CallbackServerContext* context, const v1::ListResourceVersionsRequest* request,
      v1::ListResourceVersionsResponse* response) override {
    auto versions = broker_->ResourceVersions(AdminToken(context), request->path());
    if (!versions.ok()) return Finish(context, versions.status());
    for (const keystore::ResourceVersion& v : *versions) FillVersion(v, response->add_versions());
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* SetResourceVersionState(
      ::grpc::CallbackServerContext* context, const v1::SetResourceVersionStateRequest* request,
      v1::ResourceVersion* response) override {
    std::optional<keystore::VersionState> state = keystore::VersionStateFromName(request->state());
    if (!state.has_value() || request->version() <= 0) {
      return Finish(context, absl::InvalidArgumentError(
                                 "state must be enabled, disabled or destroyed, and version > 0"));
    }
    auto v = broker_->SetResourceVersionState(AdminToken(context), request->path(),
                                              request->version(), *state);
    if (!v.ok()) return Finish(context, v.status());
    FillVersion(*v, response);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GenerateKey(::grpc::CallbackServerContext* context,
                                          const v1::GenerateKeyRequest* request,
                                          v1::ResourceMetadata* response) override {
    auto md = broker_->GenerateKey(AdminToken(context), request->path(),
                                   request->type().empty() ? "aes256" : request->type(),
                                   request->rotate());
    if (!md.ok()) return Finish(context, md.status());
    FillMetadata(*md, response);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* RotateKek(::grpc::CallbackServerContext* context,
                                        const v1::RotateKekRequest*,
                                        v1::RotateKekResponse* response) override {
    auto rotated = broker_->RotateKek(AdminToken(context));
    if (!rotated.ok()) return Finish(context, rotated.status());
    response->set_kek(rotated->kek_id);
    response->set_rewrapped(rotated->rewrapped);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ListTokenSigningKeys(
      ::grpc::CallbackServerContext* context, const v1::ListTokenSigningKeysRequest*,
      v1::TokenSigningKeysResponse* response) override {
    auto keys = broker_->TokenSigningKeys(AdminToken(context));
    if (!keys.ok()) return Finish(context, keys.status());
    FillSigningKeys(*keys, *response);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* RotateTokenSigningKey(
      ::grpc::CallbackServerContext* context, const v1::RotateTokenSigningKeyRequest*,
      v1::TokenSigningKeysResponse* response) override {
    const std::string token = AdminToken(context);
    auto rotated = broker_->RotateTokenSigningKey(token);
    if (!rotated.ok()) return Finish(context, rotated.status());
    response->set_current(rotated->current);
    response->set_retired(rotated->retired);
    auto keys = broker_->TokenSigningKeys(token);
    if (!keys.ok()) return Finish(context, keys.status());
    FillSigningKeys(*keys, *response);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ListResources(::grpc::CallbackServerContext* context,
                                            const v1::ListResourcesRequest*,
                                            v1::ListResourcesResponse* response) override {
    auto list = broker_->ListResources(AdminToken(context));
    if (!list.ok()) return Finish(context, list.status());
    for (const keystore::ResourceMetadata& md : *list) FillMetadata(md, response->add_resources());
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* SetPolicy(::grpc::CallbackServerContext* context,
                                        const v1::SetPolicyRequest* request,
                                        v1::SetPolicyResponse* response) override {
    auto set = broker_->SetPolicy(AdminToken(context), request->document(), request->shadow());
    if (!set.ok()) return Finish(context, set.status());
    response->set_id(set->id);
    for (const std::string& name : set->missing_refvalues) response->add_missing_refvalues(name);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GetPolicy(::grpc::CallbackServerContext* context,
                                        const v1::GetPolicyRequest*,
                                        v1::GetPolicyResponse* response) override {
    auto policy = broker_->GetPolicy(AdminToken(context));
    if (!policy.ok()) return Finish(context, policy.status());
    response->set_id((*policy)["id"].get<std::string>());
    response->set_document_json(common::DumpJson((*policy)["policy"]));
    if (policy->contains("source")) response->set_source((*policy)["source"].get<std::string>());
    if ((*policy)["shadow"].is_object()) {
      response->set_shadow_id((*policy)["shadow"]["id"].get<std::string>());
    }
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* PolicyHistory(::grpc::CallbackServerContext* context,
                                            const v1::PolicyHistoryRequest*,
                                            v1::PolicyHistoryResponse* response) override {
    auto history = broker_->PolicyHistory(AdminToken(context));
    if (!history.ok()) return Finish(context, history.status());
    response->set_history_json(common::DumpJson(*history));
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ActivatePolicy(::grpc::CallbackServerContext* context,
                                             const v1::ActivatePolicyRequest* request,
                                             v1::ActivatePolicyResponse* response) override {
    auto id = broker_->ActivatePolicy(AdminToken(context), request->version(), request->shadow());
    if (!id.ok()) return Finish(context, id.status());
    response->set_id(*id);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ClearShadowPolicy(::grpc::CallbackServerContext* context,
                                                const v1::ClearShadowPolicyRequest*,
                                                v1::ClearShadowPolicyResponse*) override {
    return Finish(context, broker_->ClearShadowPolicy(AdminToken(context)));
  }

  ::grpc::ServerUnaryReactor* EvaluatePolicy(::grpc::CallbackServerContext* context,
                                             const v1::EvaluatePolicyRequest* request,
                                             v1::EvaluatePolicyResponse* response) override {
    auto claims = common::ParseJson(request->claims_json());
    if (!claims.ok()) {
      return Finish(context, KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                                      absl::StrCat("claims_json: ", claims.status().message())));
    }
    auto decision = broker_->EvaluatePolicy(AdminToken(context), *claims, request->resource_path(),
                                            request->document());
    if (!decision.ok()) return Finish(context, decision.status());
    response->set_allow((*decision)["allow"].get<bool>());
    response->set_policy_version((*decision)["policy_version"].get<std::string>());
    response->set_rule((*decision)["rule"].get<std::string>());
    response->set_explanation((*decision)["explanation"].get<std::string>());
    response->set_decision_json(common::DumpJson(*decision));
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* SetReferenceValues(::grpc::CallbackServerContext* context,
                                                 const v1::SetReferenceValuesRequest* request,
                                                 v1::ReferenceValuesResponse* response) override {
    auto set = broker_->SetRefValues(AdminToken(context), request->name(), request->document());
    if (!set.ok()) return Finish(context, set.status());
    response->set_set_json(common::DumpJson(*set));
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GetReferenceValues(::grpc::CallbackServerContext* context,
                                                 const v1::GetReferenceValuesRequest* request,
                                                 v1::ReferenceValuesResponse* response) override {
    auto set = broker_->GetRefValues(AdminToken(context), request->name());
    if (!set.ok()) return Finish(context, set.status());
    response->set_set_json(common::DumpJson(*set));
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ListReferenceValues(
      ::grpc::CallbackServerContext* context, const v1::ListReferenceValuesRequest*,
      v1::ListReferenceValuesResponse* response) override {
    auto list = broker_->ListRefValues(AdminToken(context));
    if (!list.ok()) return Finish(context, list.status());
    for (const auto& item : *list) response->add_names(item["name"].get<std::string>());
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* DeleteReferenceValues(::grpc::CallbackServerContext* context,
                                                    const v1::DeleteReferenceValuesRequest* request,
                                                    v1::DeleteReferenceValuesResponse*) override {
    return Finish(context, broker_->DeleteRefValues(AdminToken(context), request->name()));
  }

 private:
  Broker* broker_;
};

class AuditService final : public v1::Audit::CallbackService {
 public:
  explicit AuditService(Audit* audit) : audit_(audit) {}

  ::grpc::ServerUnaryReactor* GetLogKey(::grpc::CallbackServerContext* context,
                                        const v1::GetLogKeyRequest*,
                                        v1::GetLogKeyResponse* response) override {
    response->set_verifier_key(audit_->LogKey());
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GetCheckpoint(::grpc::CallbackServerContext* context,
                                            const v1::GetCheckpointRequest* request,
                                            v1::GetCheckpointResponse* response) override {
    auto note = audit_->Checkpoint(AdminToken(context), request->fresh());
    if (!note.ok()) return Finish(context, note.status());
    response->set_note(*note);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* ListReceipts(::grpc::CallbackServerContext* context,
                                           const v1::ListReceiptsRequest* request,
                                           v1::ReceiptsResponse* response) override {
    auto rows = audit_->Receipts(AdminToken(context), request->start(), request->end());
    if (!rows.ok()) return Finish(context, rows.status());
    Fill(*rows, response, 0);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* QueryReceipts(::grpc::CallbackServerContext* context,
                                            const v1::QueryReceiptsRequest* request,
                                            v1::ReceiptsResponse* response) override {
    receipts::ReceiptQuery q;
    for (auto [text, out] :
         {std::pair{&request->from(), &q.from}, std::pair{&request->to(), &q.to}}) {
      if (text->empty()) continue;
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, *text, &t, &err)) {
        return Finish(context, KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                                        "from/to must be RFC 3339 times"));
      }
      *out = t;
    }
    q.decision = request->decision();
    q.resource = request->resource();
    q.key_version = request->key_version();
    q.image = request->image();
    q.measurement = request->measurement();
    q.tee = request->tee();
    q.policy_version = request->policy_version();
    q.rule = request->rule();
    q.chip_id = request->chip_id();
    q.after_index = request->after_index();
    q.limit = request->limit() == 0 ? 100 : std::min<uint32_t>(request->limit(), 1000);
    auto rows = audit_->Query(AdminToken(context), q);
    if (!rows.ok()) return Finish(context, rows.status());
    Fill(*rows, response, q.limit);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GetInclusionProof(::grpc::CallbackServerContext* context,
                                                const v1::InclusionProofRequest* request,
                                                v1::ProofResponse* response) override {
    auto proof = audit_->InclusionProof(AdminToken(context), request->index(), request->size());
    if (!proof.ok()) return Finish(context, proof.status());
    return FinishProof(context, *proof, response);
  }

  ::grpc::ServerUnaryReactor* GetConsistencyProof(::grpc::CallbackServerContext* context,
                                                  const v1::ConsistencyProofRequest* request,
                                                  v1::ProofResponse* response) override {
    auto proof = audit_->ConsistencyProof(AdminToken(context), request->size1(), request->size2());
    if (!proof.ok()) return Finish(context, proof.status());
    return FinishProof(context, *proof, response);
  }

  ::grpc::ServerUnaryReactor* ProveReceipt(::grpc::CallbackServerContext* context,
                                           const v1::ProveReceiptRequest* request,
                                           v1::ProveReceiptResponse* response) override {
    auto proof = audit_->Prove(AdminToken(context), request->index());
    if (!proof.ok()) return Finish(context, proof.status());
    response->set_proof(*proof);
    return Finish(context, absl::OkStatus());
  }

  ::grpc::ServerUnaryReactor* GetEvidence(::grpc::CallbackServerContext* context,
                                          const v1::GetEvidenceRequest* request,
                                          v1::GetEvidenceResponse* response) override {
    auto evidence = audit_->Evidence(AdminToken(context), request->index());
    if (!evidence.ok()) return Finish(context, evidence.status());
    response->set_evidence_json(*evidence);
    return Finish(context, absl::OkStatus());
  }

 private:
  static void Fill(const std::vector<receipts::StoredReceipt>& rows, v1::ReceiptsResponse* out,
                   size_t limit) {
    for (const receipts::StoredReceipt& r : rows) {
      v1::StoredReceipt* s = out->add_receipts();
      s->set_index(r.index);
      s->set_leaf(r.leaf);
    }
    if (limit > 0 && rows.size() == limit && !rows.empty()) {
      out->set_has_next(true);
      out->set_next_index(rows.back().index + 1);
    }
  }
  // The proof JSON's base64 hashes as raw bytes.
  ::grpc::ServerUnaryReactor* FinishProof(::grpc::CallbackServerContext* context,
                                          const common::Json& proof, v1::ProofResponse* response) {
    for (const common::Json& h : proof["hashes"]) {
      std::string raw;
      if (!absl::Base64Unescape(h.get<std::string>(), &raw)) {
        return Finish(context, absl::InternalError("malformed proof hash"));
      }
      response->add_hashes(raw);
    }
    return Finish(context, absl::OkStatus());
  }

  Audit* audit_;
};

class GrpcServerImpl final : public GrpcServer {
 public:
  GrpcServerImpl(Broker* broker, Audit* audit) : broker_(broker), admin_(broker) {
    if (audit != nullptr) audit_.emplace(audit);
  }
  ~GrpcServerImpl() override { Stop(); }

  absl::Status Init(const GrpcServerOptions& options) {
    std::shared_ptr<::grpc::ServerCredentials> creds;
    if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
      auto cert = common::ReadFile(options.tls_cert_file);
      auto key = common::ReadFile(options.tls_key_file);
      if (!cert.ok()) return cert.status();
      if (!key.ok()) return key.status();
      ::grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({*key, *cert});
      creds = ::grpc::SslServerCredentials(ssl);
    } else {
      creds = ::grpc::InsecureServerCredentials();
    }
    ::grpc::EnableDefaultHealthCheckService(true);
    ::grpc::ServerBuilder builder;
    builder.AddListeningPort(options.address, creds, &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    if (options.metrics != nullptr) {
      std::vector<std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>>
          interceptors;
      interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(options.metrics));
      builder.experimental().SetInterceptorCreators(std::move(interceptors));
    }
    builder.RegisterService(&key_broker_);
    builder.RegisterService(&admin_);
    if (audit_.has_value()) builder.RegisterService(&*audit_);
    const int threads = std::max(1, options.threads);
    // Queues only poll and run the non-blocking handlers: one per core.
    const int queues = static_cast<int>(
        std::clamp(std::thread::hardware_concurrency(), 1u, static_cast<unsigned>(threads)));
    for (int i = 0; i < queues; ++i) cqs_.push_back(builder.AddCompletionQueue());
    workers_.emplace(threads, std::max(1, options.max_in_progress));
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options.address));
    }
    // Several outstanding requests per method and queue, so concurrent calls
    // are accepted without waiting for a re-arm.
    constexpr int kPending = 16;
    for (auto& cq : cqs_) {
      for (int i = 0; i < kPending; ++i) {
        AsyncUnaryCall<v1::AuthRequest, v1::AuthResponse>::Arm(
            &key_broker_, &v1::KeyBroker::AsyncService::RequestAuth, &HandleAuth, broker_, cq.get(),
            &stopping_);
        AsyncUnaryCall<v1::AttestRequest, v1::AttestResponse>::Arm(
            &key_broker_, &v1::KeyBroker::AsyncService::RequestAttest, &HandleAttest, broker_,
            cq.get(), &stopping_, &*workers_);
        AsyncUnaryCall<v1::GetResourceRequest, v1::GetResourceResponse>::Arm(
            &key_broker_, &v1::KeyBroker::AsyncService::RequestGetResource, &HandleGetResource,
            broker_, cq.get(), &stopping_, &*workers_);
      }
      AsyncUnaryCall<v1::GetJwksRequest, v1::GetJwksResponse>::Arm(
          &key_broker_, &v1::KeyBroker::AsyncService::RequestGetJwks, &HandleGetJwks, broker_,
          cq.get(), &stopping_);
    }
    for (auto& cq : cqs_) {
      threads_.emplace_back([queue = cq.get()] {
        void* tag = nullptr;
        bool ok = false;
        while (queue->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
      });
    }
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void SetServing(bool serving) override {
    if (server_ == nullptr || stopping_.load()) return;
    ::grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
    if (health == nullptr) return;
    health->SetServingStatus(serving);  // every service, and ""
  }

  void Stop() override {
    if (server_ == nullptr) return;
    stopping_.store(true);
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    // Handlers still running finish their responses before the queues close.
    if (workers_.has_value()) workers_->Stop();
    // Queues are shut down after the server, then drained by their threads
    // (pending tags arrive with ok=false and free themselves).
    for (auto& cq : cqs_) cq->Shutdown();
    for (std::thread& t : threads_) t.join();
    server_->Wait();
    server_.reset();
  }

 private:
  Broker* broker_;
  v1::KeyBroker::AsyncService key_broker_;
  AdminService admin_;
  std::optional<AuditService> audit_;
  std::vector<std::unique_ptr<::grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  std::optional<FiberWorkers> workers_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<::grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              Broker* broker, Audit* audit) {
  auto server = std::make_unique<GrpcServerImpl>(broker, audit);
  absl::Status status = server->Init(options);
  if (!status.ok()) return status;
  return std::unique_ptr<GrpcServer>(std::move(server));
}

}  // namespace kbs::grpc_api
