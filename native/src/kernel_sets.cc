// What before mode keeps in the kernel rather than in the process: elements of the nftables sets of a
// service's table (created by firmware/gate/iptables.ts with the nft tool), each with a timeout, so
// that they lapse by themselves when the firmware stops refreshing them. Written over nfnetlink here,
// synchronously: a refresh on a timer costs one batch of a few hundred bytes, and a withdrawal is in
// force in the kernel before the call returns - no nft process per write.
#include "kernel_sets.h"

// The C library's headers first: they define what the kernel headers would otherwise redefine.
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

// Bound on waiting for the kernel's answer to one batch; it answers in microseconds, so this only
// turns a kernel that never answers into an error instead of a frozen event loop.
constexpr int kAnswerTimeoutMs = 1000;

Napi::Error KernelError(Napi::Env env, const std::string& what, int err) {
  std::string message = what + ": " + strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  return error;
}

struct Entry {
  std::string set;
  // 0: the set is emptied; otherwise its one element lapses after this many ms.
  uint64_t timeout_ms = 0;
};

class KernelSets : public Napi::ObjectWrap<KernelSets> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "KernelSets",
                       {
                           InstanceMethod<&KernelSets::Replace>("replace"),
                           InstanceMethod<&KernelSets::Close>("close"),
                       });
  }

  // new KernelSets(table): the sets of nftables table `inet <table>`.
  explicit KernelSets(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KernelSets>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      Napi::TypeError::New(env, "KernelSets(table)").ThrowAsJavaScriptException();
      return;
    }
    table_ = info[0].As<Napi::String>().Utf8Value();
    nl_ = mnl_socket_open(NETLINK_NETFILTER);
    if (nl_ == nullptr) {
      KernelError(env, "cannot open a netfilter netlink socket", errno).ThrowAsJavaScriptException();
      return;
    }
    if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
      int err = errno;
      Shutdown();
      KernelError(env, "cannot bind a netfilter netlink socket", err).ThrowAsJavaScriptException();
      return;
    }
    buffer_.resize(MNL_SOCKET_BUFFER_SIZE);
  }

  ~KernelSets() override { Shutdown(); }

 private:
  void Shutdown() {
    if (nl_ != nullptr) {
      mnl_socket_close(nl_);
      nl_ = nullptr;
    }
  }

  // replace(port, [{ set, timeoutMs }, ...]): in one transaction, each named set is emptied and, when
  // timeoutMs > 0, given the one element `port` lapsing after timeoutMs. Emptying first rather than
  // updating the element keeps this to what every kernel with nftables sets does: re-adding an
  // existing element leaves its old timeout on kernels before 6.11.
  Napi::Value Replace(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsArray()) {
      Napi::TypeError::New(env, "replace(port, [{ set, timeoutMs }])").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (nl_ == nullptr) {
      Napi::Error::New(env, "the kernel sets were closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint16_t port = htons(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()));
    Napi::Array list = info[1].As<Napi::Array>();
    std::vector<Entry> entries;
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value item = list.Get(i);
      if (!item.IsObject()) continue;
      Napi::Object o = item.As<Napi::Object>();
      Napi::Value set = o.Get("set");
      Napi::Value timeout = o.Get("timeoutMs");
      if (!set.IsString() || !timeout.IsNumber()) {
        Napi::TypeError::New(env, "replace(port, [{ set, timeoutMs }])").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      double ms = timeout.As<Napi::Number>().DoubleValue();
      entries.push_back({set.As<Napi::String>().Utf8Value(), ms > 0 ? static_cast<uint64_t>(ms + 0.5) : 0});
    }
    int err = Send(port, entries);
    if (err != 0) {
      KernelError(env, "nftables table inet " + table_ + ": cannot write its set elements", err).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // Appends one set-element message for `set` to the batch: DELSETELEM without elements is a flush.
  bool Append(mnl_nlmsg_batch* batch, uint16_t type, uint16_t flags, const std::string& set, const uint16_t* port,
              uint64_t timeout_ms, uint32_t seq) {
    nftnl_set* s = nftnl_set_alloc();
    if (s == nullptr) return false;
    nftnl_set_set_str(s, NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(s, NFTNL_SET_NAME, set.c_str());
    if (port != nullptr) {
      nftnl_set_elem* e = nftnl_set_elem_alloc();
      if (e == nullptr) {
        nftnl_set_free(s);
        return false;
      }
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, port, sizeof *port);
      nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
      nftnl_set_elem_add(s, e);
    }
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch)), type, NFPROTO_INET,
                                          flags | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s);
    nftnl_set_free(s);
    return mnl_nlmsg_batch_next(batch);
  }

  // Sends the batch and waits for the kernel's answer to every message in it; 0 or an errno.
  int Send(uint16_t port, const std::vector<Entry>& entries) {
    std::vector<char> out(MNL_SOCKET_BUFFER_SIZE);
    mnl_nlmsg_batch* batch = mnl_nlmsg_batch_start(out.data(), out.size());
    uint32_t first = ++seq_;
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch)), first);
    mnl_nlmsg_batch_next(batch);
    int expected = 0;
    bool ok = true;
    for (const Entry& entry : entries) {
      ok = ok && Append(batch, NFT_MSG_DELSETELEM, 0, entry.set, nullptr, 0, ++seq_);
      expected++;
      if (entry.timeout_ms > 0) {
        ok = ok && Append(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE, entry.set, &port, entry.timeout_ms, ++seq_);
        expected++;
      }
    }
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch)), ++seq_);
    mnl_nlmsg_batch_next(batch);
    if (!ok) {
      mnl_nlmsg_batch_stop(batch);
      return ENOMEM;
    }
    ssize_t sent = mnl_socket_sendto(nl_, mnl_nlmsg_batch_head(batch), mnl_nlmsg_batch_size(batch));
    mnl_nlmsg_batch_stop(batch);
    if (sent < 0) return errno;
    return Answers(first, expected);
  }

  // Every message asked for an ACK: an error code of 0 is one, anything else the kernel's refusal.
  int Answers(uint32_t first, int expected) {
    int failure = 0;
    int fd = mnl_socket_get_fd(nl_);
    while (expected > 0) {
      pollfd p = {fd, POLLIN, 0};
      int ready = poll(&p, 1, kAnswerTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return failure != 0 ? failure : ETIMEDOUT;
      if (ready < 0) return errno;
      ssize_t n = mnl_socket_recvfrom(nl_, buffer_.data(), buffer_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      int len = static_cast<int>(n);
      for (nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(buffer_.data()); mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
        // Answers to an earlier batch that timed out are not this batch's.
        if (nlh->nlmsg_seq <= first || nlh->nlmsg_type != NLMSG_ERROR) continue;
        const nlmsgerr* answer = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (answer->error != 0 && failure == 0) failure = -answer->error;
        expected--;
      }
    }
    return failure;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::string table_;
  mnl_socket* nl_ = nullptr;
  uint32_t seq_ = 0;
  std::vector<char> buffer_;
};

}  // namespace

Napi::Function DefineKernelSets(Napi::Env env) { return KernelSets::Define(env); }
