// The gRPC adapter (kbs.v1.KeyBroker and kbs.v1.Admin) over the broker,
// plus gRPC health checking. Same semantics and errors as HTTP: each absl
// status becomes the gRPC status with the same code, and the reference
// error variant travels in the `kbs-error-type` trailer.
#ifndef KBS_KBS_GRPC_GRPC_SERVER_H_
#define KBS_KBS_GRPC_GRPC_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kbs/core/audit.h"
#include "kbs/core/broker.h"
#include "kbs/http/metrics.h"

namespace kbs::grpc_api {

struct GrpcServerOptions {
  std::string address = "127.0.0.1:50051";  // "host:port"; port 0 picks one
  size_t max_message_bytes = 2 * 1024 * 1024;
  // Threads running the KeyBroker calls that wait for a receipt, each call
  // on a fiber (the completion-queue threads are one per core).
  int threads = 2;
  // Attest and GetResource calls in progress at once (each holds a fiber
  // stack); more get RESOURCE_EXHAUSTED at once.
  int max_in_progress = 4096;
  // When set, every call of the KBS's services is counted there (for
  // /metrics); must outlive the server.
  http::Metrics* metrics = nullptr;
  // PEM files; both set -> TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class GrpcServer {
 public:
  virtual ~GrpcServer() = default;
  // `broker` (and `audit`, which may be null: no Audit service) must
  // outlive the server.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           Broker* broker, Audit* audit = nullptr);
  virtual int port() const = 0;
  // grpc.health.v1 status of the whole server ("") and of kbs.v1.KeyBroker:
  // NOT_SERVING while releases would fail (what /readyz says over HTTP).
  virtual void SetServing(bool serving) = 0;
  virtual void Stop() = 0;
};

}  // namespace kbs::grpc_api

#endif  // KBS_KBS_GRPC_GRPC_SERVER_H_
