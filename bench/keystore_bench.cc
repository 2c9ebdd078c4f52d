// Resource reads through the key store, as a release does them: the sealed
// row (cached), the data key unwrapped by the KEK, the value opened. With the
// local KEK and with a PKCS#11 KEK in SoftHSM2 (the data key is decrypted
// inside the token on every read). Target: 5,000 GETs/s on 2 cores through
// PKCS#11.
//
//   build/bench/kbs_keystorebench --benchmark_min_time=2
// (the PKCS#11 cases need /usr/lib/softhsm/libsofthsm2.so and softhsm2-util)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/files.h"
#include "kbs/keystore/local_kek.h"
#include "kbs/keystore/pkcs11_kek.h"
#include "kbs/keystore/sqlite_key_store.h"

namespace {

namespace ks = kbs::keystore;

constexpr char kModule[] = "/usr/lib/softhsm/libsofthsm2.so";

struct Store {
  std::filesystem::path dir;
  std::unique_ptr<kbs::storage::SqliteDatabase> db;
  std::unique_ptr<ks::Kek> kek;
  std::unique_ptr<ks::SqliteKeyStore> keys;
  kbs::common::SystemClock clock;
};

// One store per process and backend, shared by the benchmark's threads.
Store* Make(bool pkcs11) {
  static Store* stores[2] = {nullptr, nullptr};
  Store*& s = stores[pkcs11 ? 1 : 0];
  if (s != nullptr) return s;
  s = new Store;
  s->dir = std::filesystem::temp_directory_path() /
           absl::StrCat("kbs_keystore_bench_", ::getpid(), pkcs11 ? "_p11" : "_local");
  std::filesystem::remove_all(s->dir);
  std::filesystem::create_directories(s->dir / "tokens");
  s->db = *kbs::storage::SqliteDatabase::Open((s->dir / "kbs.db").string(), 4, "");
  if (pkcs11) {
    const std::string conf = (s->dir / "softhsm2.conf").string();
    (void)kbs::common::WriteFileAtomic(
        conf, absl::StrCat("directories.tokendir = ", (s->dir / "tokens").string(), "\n"), 0600);
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    if (std::system("softhsm2-util --init-token --free --label bench --so-pin 12345678 "
                    "--pin 1234 >/dev/null") != 0) {
      return nullptr;
    }
    ks::Pkcs11KekOptions o;
    o.module_path = kModule;
    o.token_label = "bench";
    o.key_label = "kbs-kek";
    o.pin = kbs::common::SecretBytes(kbs::common::AsSpan("1234"));
    auto kek = ks::Pkcs11Kek::Create(std::move(o));
    if (!kek.ok()) return nullptr;
    s->kek = *std::move(kek);
  } else {
    s->kek = *ks::LocalKek::Open((s->dir / "master.key").string());
  }
  s->keys = *ks::SqliteKeyStore::Create(s->db.get(), s->kek.get(), &s->clock);
  for (int i = 0; i < 100; ++i) {
    (void)s->keys->Put(absl::StrCat("models/m", i, "/key"),
                       kbs::common::AsSpan(std::string(32, 'k')));
  }
  return s;
}

void BM_Get(benchmark::State& state, bool pkcs11) {
  if (pkcs11 && !std::filesystem::exists(kModule)) {
    state.SkipWithError("SoftHSM2 is not installed");
    return;
  }
  Store* s = Make(pkcs11);
  if (s == nullptr) {
    state.SkipWithError("cannot set up the key store");
    return;
  }
  int i = state.thread_index();
  for (auto _ : state) {
    auto v = s->keys->Get(absl::StrCat("models/m", i++ % 100, "/key"));
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Get, local, false)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Get, pkcs11, true)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
