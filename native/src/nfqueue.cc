// One NFQUEUE for the gate's before mode: the kernel holds each queued TCP SYN until JavaScript gives
// its verdict by packet id. The netlink socket is watched with a uv_poll on the main loop, so receiving
// never blocks and never waits for a verdict: every readable event drains what the kernel has, then
// hands the whole batch to JavaScript in one call.
#include <napi.h>
#include <uv.h>

#include "kernel_sets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#include <cstdint>
#include <vector>

namespace {

// Enough of the packet to read the IP header (IPv4 options included) and the TCP ports and sequence.
constexpr uint32_t kCopyRange = 128;
// A readable event handles at most this many datagrams before yielding to the rest of the loop.
constexpr int kMaxDatagramsPerWake = 1024;
constexpr size_t kReceiveBuffer = 64 * 1024;
constexpr int kSocketBuffer = 4 * 1024 * 1024;

struct Packet {
  uint32_t id = 0;
  uint32_t mark = 0;
  // 4 or 6; 0 when the payload is not a TCP segment we could read (the caller then just accepts it).
  int family = 0;
  char src[INET6_ADDRSTRLEN] = {0};
  char dst[INET6_ADDRSTRLEN] = {0};
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
};

uint16_t Be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t Be32(const unsigned char* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

void ParseTcp(const unsigned char* data, int len, Packet& p) {
  if (len < 1) return;
  const unsigned char* tcp = nullptr;
  int version = data[0] >> 4;
  if (version == 4) {
    int ihl = (data[0] & 0x0f) * 4;
    bool fragment = (Be16(data + 6) & 0x1fff) != 0;
    if (len < 20 || ihl < 20 || len < ihl + 8 || data[9] != IPPROTO_TCP || fragment) return;
    inet_ntop(AF_INET, data + 12, p.src, sizeof p.src);
    inet_ntop(AF_INET, data + 16, p.dst, sizeof p.dst);
    tcp = data + ihl;
    p.family = 4;
  } else if (version == 6) {
    // SYNs with extension headers are left unparsed; the caller accepts them rather than guess.
    if (len < 48 || data[6] != IPPROTO_TCP) return;
    inet_ntop(AF_INET6, data + 8, p.src, sizeof p.src);
    inet_ntop(AF_INET6, data + 24, p.dst, sizeof p.dst);
    tcp = data + 40;
    p.family = 6;
  } else {
    return;
  }
  p.sport = Be16(tcp);
  p.dport = Be16(tcp + 2);
  p.seq = Be32(tcp + 4);
}

Napi::Error SystemError(Napi::Env env, const char* call, int err, uint16_t queue) {
  char message[256];
  snprintf(message, sizeof message, "%s for NFQUEUE %u failed: %s", call, queue, strerror(err));
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, call));
  return error;
}

class Queue : public Napi::ObjectWrap<Queue> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Queue",
                       {
                           InstanceMethod<&Queue::Accept>("accept"),
                           InstanceMethod<&Queue::Repeat>("repeat"),
                           InstanceMethod<&Queue::Close>("close"),
                       });
  }

  // new Queue(queueNum, failOpen, maxLen, onPackets)
  explicit Queue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Queue>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsBoolean() || !info[2].IsNumber() ||
        !info[3].IsFunction()) {
      Napi::TypeError::New(env, "Queue(queueNum, failOpen, maxLen, onPackets)").ThrowAsJavaScriptException();
      return;
    }
    num_ = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
    if (!Open(env, info[1].As<Napi::Boolean>().Value(), info[2].As<Napi::Number>().Uint32Value())) return;
    buffer_.resize(kReceiveBuffer);
    on_packets_ = Napi::Persistent(info[3].As<Napi::Function>());
    async_ = new Napi::AsyncContext(env, "handcheck:nfqueue");
    napi_add_env_cleanup_hook(env, &Queue::Cleanup, this);
    hooked_ = true;
    // Held strongly while open: the kernel may still send packets for it after JavaScript drops it.
    Ref();
    referenced_ = true;
  }

  ~Queue() override { Shutdown(); }

 private:
  bool Open(Napi::Env env, bool fail_open, uint32_t max_len) {
    h_ = nfq_open();
    if (h_ == nullptr) return Fail(env, "nfq_open", errno);
    qh_ = nfq_create_queue(h_, num_, &Queue::OnPacket, this);
    if (qh_ == nullptr) return Fail(env, "nfq_create_queue", errno);
    if (nfq_set_mode(qh_, NFQNL_COPY_PACKET, kCopyRange) < 0) return Fail(env, "nfq_set_mode", errno);
    if (nfq_set_queue_maxlen(qh_, max_len) < 0) return Fail(env, "nfq_set_queue_maxlen", errno);
    // Fail-open: when the queue is full the kernel accepts instead of dropping, so a flood or a stalled
    // loop degrades to after-accept behaviour rather than a blackholed port.
    uint32_t flags = fail_open ? NFQA_CFG_F_FAIL_OPEN : 0;
    if (nfq_set_queue_flags(qh_, NFQA_CFG_F_FAIL_OPEN, flags) < 0) return Fail(env, "nfq_set_queue_flags", errno);

    fd_ = nfq_fd(h_);
    nfnl_rcvbufsiz(nfq_nfnlh(h_), kSocketBuffer);
    // An overrun only loses the copy sent to us (the kernel applies fail-open or drops), never the
    // socket: do not let recv() report ENOBUFS as an error.
    int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) return Fail(env, "napi_get_uv_event_loop", EINVAL);
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      return Fail(env, "uv_poll_init", -rc);
    }
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, &Queue::OnReadable);
    if (rc != 0) return Fail(env, "uv_poll_start", -rc);
    return true;
  }

  bool Fail(Napi::Env env, const char* call, int err) {
    Shutdown();
    SystemError(env, call, err, num_).ThrowAsJavaScriptException();
    return false;
  }

  static void Cleanup(void* self) { static_cast<Queue*>(self)->Shutdown(); }

  void Shutdown() {
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, &Queue::Cleanup, this);
      hooked_ = false;
    }
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    // Destroying the queue makes the kernel drop what is still queued; callers answer first.
    if (qh_ != nullptr) {
      nfq_destroy_queue(qh_);
      qh_ = nullptr;
    }
    if (h_ != nullptr) {
      nfq_close(h_);
      h_ = nullptr;
    }
    fd_ = -1;
    if (async_ != nullptr) {
      delete async_;
      async_ = nullptr;
    }
    on_packets_.Reset();
    if (referenced_) {
      referenced_ = false;
      Unref();
    }
  }

  static int OnPacket(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void* data) {
    Queue* self = static_cast<Queue*>(data);
    nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(nfa);
    if (header == nullptr) return 0;
    Packet p;
    p.id = ntohl(header->packet_id);
    p.mark = nfq_get_nfmark(nfa);
    unsigned char* payload = nullptr;
    int len = nfq_get_payload(nfa, &payload);
    if (len > 0) ParseTcp(payload, len, p);
    self->batch_.push_back(p);
    return 0;
  }

  static void OnReadable(uv_poll_t* handle, int status, int) {
    Queue* self = static_cast<Queue*>(handle->data);
    if (status < 0) return;
    self->Drain();
  }

  void Drain() {
    for (int i = 0; i < kMaxDatagramsPerWake && h_ != nullptr; i++) {
      ssize_t n = recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == ENOBUFS) continue;
        break;
      }
      nfq_handle_packet(h_, buffer_.data(), static_cast<int>(n));
    }
    if (!batch_.empty()) Deliver();
  }

  void Deliver() {
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    std::vector<Packet> batch;
    batch.swap(batch_);
    if (on_packets_.IsEmpty()) return;
    Napi::Array packets = Napi::Array::New(env, batch.size());
    for (size_t i = 0; i < batch.size(); i++) {
      const Packet& p = batch[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", Napi::Number::New(env, p.id));
      o.Set("mark", Napi::Number::New(env, p.mark));
      o.Set("family", Napi::Number::New(env, p.family));
      o.Set("src", Napi::String::New(env, p.src));
      o.Set("sport", Napi::Number::New(env, p.sport));
      o.Set("dst", Napi::String::New(env, p.dst));
      o.Set("dport", Napi::Number::New(env, p.dport));
      o.Set("seq", Napi::Number::New(env, p.seq));
      packets.Set(static_cast<uint32_t>(i), o);
    }
    on_packets_.MakeCallback(Value(), {packets}, *async_);
    if (env.IsExceptionPending()) {
      Napi::Error error = env.GetAndClearPendingException();
      napi_fatal_exception(env, error.Value());
    }
  }

  Napi::Value SetVerdict(const Napi::CallbackInfo& info, uint32_t verdict, bool with_mark) {
    Napi::Env env = info.Env();
    if (info.Length() < (with_mark ? 2u : 1u) || !info[0].IsNumber() || (with_mark && !info[1].IsNumber())) {
      Napi::TypeError::New(env, with_mark ? "repeat(id, mark)" : "accept(id)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (qh_ == nullptr) return Napi::Boolean::New(env, false);
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    int rc = with_mark ? nfq_set_verdict2(qh_, id, verdict, info[1].As<Napi::Number>().Uint32Value(), 0, nullptr)
                       : nfq_set_verdict(qh_, id, verdict, 0, nullptr);
    if (rc < 0) {
      SystemError(env, "nfq_set_verdict", errno, num_).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Accept(const Napi::CallbackInfo& info) { return SetVerdict(info, NF_ACCEPT, false); }

  // NF_REPEAT sends the packet through the hook again with the new mark, where the REJECT rule that
  // matches the mark answers it with a RST.
  Napi::Value Repeat(const Napi::CallbackInfo& info) { return SetVerdict(info, NF_REPEAT, true); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  napi_env env_;
  uint16_t num_ = 0;
  nfq_handle* h_ = nullptr;
  nfq_q_handle* qh_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  std::vector<char> buffer_;
  std::vector<Packet> batch_;
  Napi::FunctionReference on_packets_;
  Napi::AsyncContext* async_ = nullptr;
  bool hooked_ = false;
  bool referenced_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Queue", Queue::Define(env));
  exports.Set("KernelSets", DefineKernelSets(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(handcheck_nfqueue, Init)
