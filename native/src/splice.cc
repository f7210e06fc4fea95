// The byte relay of a proxy service (firmware/proxy-service.ts): once the gate has admitted a client and
// the upstream has accepted, both TCP sockets are handed here and bytes move between them with splice(2)
// through one pipe per direction, never through user space.
//
// The sockets are dup()s of Node's descriptors: Node keeps its handles (not reading, not writing) until
// the relay has ended, so the gate still sees its held connection, and the numbers here are ours alone
// until we close them. Every relay's two sockets sit edge-triggered in one epoll set per Node
// environment, and that set's descriptor is watched by a uv_poll on the main loop: no thread, no lock,
// and JavaScript hears of an ending from a libuv callback like any other I/O.
//
// Per direction, bytes go socket -> pipe only while the pipe is empty and pipe -> socket until it is:
// tcp_splice_read (net/ipv4/tcp.c) returns 0 only at the FIN when there was room in the pipe, so with an
// empty pipe a 0 is the peer's FIN, which is passed on with shutdown(SHUT_WR) once the pipe is drained.
// splice_to_socket (fs/splice.c) sets MSG_MORE itself while the pipe holds more, so SPLICE_F_MORE is not
// set: on the last buffer it would hold back a reply's tail. A failed read or write on one side (an RST,
// a keepalive timeout, EPIPE) resets the other: SO_LINGER 0, then close.
#include <napi.h>
#include <uv.h>

#include "errno_name.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// The most one splice into the pipe asks for, and so the most a direction holds: what backpressure
// bounds per connection. A buffer of the pipe can hold a whole skb fragment (up to 32 KiB on loopback,
// __splice_segment in net/core/skbuff.c), so the length asked, not the pipe's size, is the bound.
constexpr size_t kFill = 256 << 10;
// Pipe fills per direction per turn of the event loop, so that one bulk transfer cannot starve the rest.
constexpr int kFillsPerTurn = 16;
constexpr int kClient = 0;
constexpr int kUpstream = 1;

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

class Relay;

// One per Node environment: the epoll set of every relay, watched by one uv_poll.
struct Hub {
  int epfd = -1;
  uv_poll_t* poll = nullptr;
  uv_idle_t* idle = nullptr;
  int active = 0;
  // Relays that stopped on their budget rather than on EAGAIN: edge-triggered epoll will not say again.
  std::vector<Relay*> again;
  // While a batch of events is handled, relays that end are released after it, not during it.
  bool in_batch = false;
  std::vector<Relay*> ended;
};

struct Side {
  int fd = -1;
  bool readable = true;
  bool writable = true;
  bool error = false;
  Relay* relay = nullptr;
};

struct Direction {
  int from = 0;
  int to = 0;
  int pipe_r = -1;
  int pipe_w = -1;
  std::vector<char> head;  // bytes Node had already read: they go first
  size_t head_sent = 0;
  size_t in_pipe = 0;
  double moved = 0;
  bool eof = false;
  bool done = false;
};

Hub* HubOf(Napi::Env env);

class Relay : public Napi::ObjectWrap<Relay> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Relay",
                       {InstanceMethod("start", &Relay::Start), InstanceMethod("abort", &Relay::Abort),
                        InstanceMethod("stats", &Relay::Stats)});
  }

  // Relay(clientFd, upstreamFd, onEnd): takes its own duplicates of both descriptors and its pipes, or
  // throws with the errno (EMFILE) and holds nothing.
  explicit Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction()) {
      Napi::TypeError::New(env, "Relay(clientFd, upstreamFd, onEnd)").ThrowAsJavaScriptException();
      return;
    }
    hub_ = HubOf(env);
    if (hub_ == nullptr) return;
    int given[2] = {info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value()};
    for (int s = 0; s < 2; s++) {
      sides_[s].relay = this;
      sides_[s].fd = fcntl(given[s], F_DUPFD_CLOEXEC, 0);
      if (sides_[s].fd < 0) {
        Fail(env, "dup");
        return;
      }
    }
    for (int d = 0; d < 2; d++) {
      dirs_[d].from = d;
      dirs_[d].to = 1 - d;
      int fds[2];
      if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        Fail(env, "pipe2");
        return;
      }
      dirs_[d].pipe_r = fds[0];
      dirs_[d].pipe_w = fds[1];
      // Room for a whole fill even when every buffer holds one page. Refused (EPERM) once an
      // unprivileged user's pipes pass pipe-user-pages-soft: the pipe keeps its default size, which only
      // means smaller fills.
      fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kFill));
    }
    on_end_ = Napi::Persistent(info[2].As<Napi::Function>());
    last_activity_ = NowMs();
  }

  ~Relay() override { Close(); }

  bool finished() const { return finished_; }

  // Moves what it can in both directions; ends the relay when both FINs are passed on or a side fails.
  // Returns true when a direction stopped on its budget with bytes still waiting.
  bool Run() {
    bool more = false;
    for (auto& d : dirs_) {
      if (finished_) return false;
      more = Move(d) || more;
    }
    if (finished_) return false;
    for (int s = 0; s < 2 && !more; s++) {
      // An error with nothing left to read or write on that side, such as an RST after its FIN: the
      // pending error says what happened.
      if (!sides_[s].error) continue;
      sides_[s].error = false;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(sides_[s].fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        SideFailed(s, err);
        return false;
      }
    }
    if (dirs_[0].done && dirs_[1].done) End("ended", nullptr);
    return more;
  }

  void OnEvents(Side& side, uint32_t events) {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) side.writable = true;
    if (events & EPOLLERR) side.error = true;
  }

  bool queued = false;

 private:
  void Fail(Napi::Env env, const char* call) {
    int err = errno;
    Close();
    Napi::Error error = Napi::Error::New(env, std::string(call) + ": " + strerror(err));
    error.Set("code", Napi::String::New(env, ErrnoName(err)));
    error.Set("errno", Napi::Number::New(env, err));
    error.ThrowAsJavaScriptException();
  }

  // start(toUpstream, toClient): the bytes Node had already read from each side, then the relay runs.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (started_ || finished_ || sides_[0].fd < 0) {
      Napi::Error::New(env, "the relay has already started or could not be made").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsBuffer()) {
      Napi::TypeError::New(env, "start(toUpstream: Buffer, toClient: Buffer)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    for (int d = 0; d < 2; d++) {
      auto buffer = info[d == kClient ? 0 : 1].As<Napi::Buffer<char>>();
      dirs_[d].head.assign(buffer.Data(), buffer.Data() + buffer.Length());
    }
    for (auto& side : sides_) {
      struct epoll_event ev;
      memset(&ev, 0, sizeof ev);
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = &side;
      if (epoll_ctl(hub_->epfd, EPOLL_CTL_ADD, side.fd, &ev) < 0) {
        int err = errno;
        for (auto& other : sides_) epoll_ctl(hub_->epfd, EPOLL_CTL_DEL, other.fd, nullptr);
        errno = err;
        Fail(env, "epoll_ctl");
        return env.Undefined();
      }
    }
    started_ = true;
    Ref();
    if (hub_->active++ == 0) uv_poll_start(hub_->poll, UV_READABLE, OnHubReadable);
    // The first pass runs on the next turn: a relay never calls back into JavaScript from start().
    Queue(hub_, this);
    return env.Undefined();
  }

  // abort(resetClient): ends the relay now without calling onEnd. The upstream is reset; the client is
  // reset too when asked, otherwise closed as its socket is set (Node's resetAndDestroy sets SO_LINGER 0).
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    if (started_ && !finished_) {
      Linger(kUpstream);
      if (info.Length() > 0 && info[0].ToBoolean().Value()) Linger(kClient);
      Finish();
    }
    return info.Env().Undefined();
  }

  // stats(): bytes moved each way, bytes in the pipes, ms since a byte last moved.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("toUpstream", Napi::Number::New(env, dirs_[kClient].moved));
    o.Set("toClient", Napi::Number::New(env, dirs_[kUpstream].moved));
    double buffered = 0;
    for (auto& d : dirs_) buffered += static_cast<double>(d.in_pipe + d.head.size() - d.head_sent);
    o.Set("buffered", Napi::Number::New(env, buffered));
    o.Set("idleMs", Napi::Number::New(env, static_cast<double>(NowMs() - last_activity_)));
    return o;
  }

  static void OnHubReadable(uv_poll_t* handle, int status, int);

  bool Move(Direction& d) {
    Side& src = sides_[d.from];
    Side& dst = sides_[d.to];
    int fills = 0;
    for (;;) {
      if (d.done) return false;
      if (d.head_sent < d.head.size()) {
        if (!dst.writable) return false;
        ssize_t n = send(dst.fd, d.head.data() + d.head_sent, d.head.size() - d.head_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) return Blocked(d.to, dst.writable);
        d.head_sent += static_cast<size_t>(n);
        Moved(d, n);
        if (d.head_sent == d.head.size()) {
          std::vector<char>().swap(d.head);
          d.head_sent = 0;
        }
        continue;
      }
      if (d.in_pipe > 0) {
        if (!dst.writable) return false;
        ssize_t n = splice(d.pipe_r, nullptr, dst.fd, nullptr, d.in_pipe, kSpliceFlags);
        if (n < 0) return Blocked(d.to, dst.writable);
        d.in_pipe -= static_cast<size_t>(n);
        Moved(d, n);
        continue;
      }
      if (d.eof) {
        // ENOTCONN: the socket is already gone both ways; its own error, if any, is reported on it.
        if (shutdown(dst.fd, SHUT_WR) < 0 && errno != ENOTCONN) return Blocked(d.to, dst.writable);
        d.done = true;
        return false;
      }
      if (!src.readable) return false;
      if (fills == kFillsPerTurn) return true;
      ssize_t n = splice(src.fd, nullptr, d.pipe_w, nullptr, kFill, kSpliceFlags);
      if (n < 0) return Blocked(d.from, src.readable);
      if (n == 0) {
        d.eof = true;
        continue;
      }
      fills++;
      d.in_pipe += static_cast<size_t>(n);
      last_activity_ = NowMs();
    }
  }

  void Moved(Direction& d, ssize_t n) {
    d.moved += static_cast<double>(n);
    last_activity_ = NowMs();
  }

  // After a failed call on side `s`: EAGAIN waits for that side's next edge, EINTR is tried again on
  // the next pass, anything else ends the relay.
  bool Blocked(int s, bool& ready) {
    int err = errno;
    if (err == EINTR) return true;
    if (err == EAGAIN) {
      ready = false;
      return false;
    }
    SideFailed(s, err);
    return false;
  }

  void SideFailed(int s, int err) {
    Linger(1 - s);
    End(s == kClient ? "client-failed" : "upstream-failed", ErrnoName(err).c_str());
  }

  void Linger(int s) {
    struct linger lg = {1, 0};
    setsockopt(sides_[s].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }

  // onEnd(outcome, code | null): "ended" when both FINs were passed on, "client-failed" or
  // "upstream-failed" with the errno name when a side failed and the other was reset.
  void End(const char* outcome, const char* code) {
    Finish();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value codeValue = code ? Napi::String::New(env, code) : env.Null();
    Napi::AsyncContext context(env, "handcheck:splice");
    on_end_.MakeCallback(Value(), {Napi::String::New(env, outcome), codeValue}, context);
  }

  // Gives back every descriptor, once, and lets the object go when no batch is looking at it.
  void Finish() {
    if (finished_) return;
    finished_ = true;
    for (auto& side : sides_) epoll_ctl(hub_->epfd, EPOLL_CTL_DEL, side.fd, nullptr);
    Close();
    auto& again = hub_->again;
    again.erase(std::remove(again.begin(), again.end(), this), again.end());
    if (--hub_->active == 0) uv_poll_stop(hub_->poll);
    if (hub_->in_batch) hub_->ended.push_back(this);
    else Unref();
  }

  void Close() {
    for (auto& side : sides_) CloseFd(side.fd);
    for (auto& d : dirs_) {
      CloseFd(d.pipe_r);
      CloseFd(d.pipe_w);
      d.in_pipe = 0;
    }
  }

  friend void Queue(Hub* hub, Relay* relay);
  friend void RunBatch(Hub* hub);

  Hub* hub_ = nullptr;
  Side sides_[2];
  Direction dirs_[2];
  bool started_ = false;
  bool finished_ = false;
  uint64_t last_activity_ = 0;
  Napi::FunctionReference on_end_;
};

void RunBatch(Hub* hub);

void OnIdle(uv_idle_t* handle) { RunBatch(static_cast<Hub*>(handle->data)); }

void Queue(Hub* hub, Relay* relay) {
  if (std::find(hub->again.begin(), hub->again.end(), relay) == hub->again.end()) hub->again.push_back(relay);
  uv_idle_start(hub->idle, OnIdle);
}

// One pass: the sides epoll reports ready, then the relays left over from the last pass.
void RunBatch(Hub* hub) {
  std::vector<Relay*> run;
  run.swap(hub->again);
  for (Relay* relay : run) relay->queued = true;
  struct epoll_event events[64];
  int n = epoll_wait(hub->epfd, events, 64, 0);
  for (int i = 0; i < n; i++) {
    Side* side = static_cast<Side*>(events[i].data.ptr);
    side->relay->OnEvents(*side, events[i].events);
    if (!side->relay->queued) {
      side->relay->queued = true;
      run.push_back(side->relay);
    }
  }
  hub->in_batch = true;
  std::vector<Relay*> more;
  for (Relay* relay : run) {
    relay->queued = false;
    if (!relay->finished() && relay->Run()) more.push_back(relay);
  }
  hub->in_batch = false;
  for (Relay* relay : more)
    if (!relay->finished()) hub->again.push_back(relay);
  std::vector<Relay*> ended;
  ended.swap(hub->ended);
  for (Relay* relay : ended) relay->Unref();
  if (hub->again.empty()) uv_idle_stop(hub->idle);
  else uv_idle_start(hub->idle, OnIdle);
}

void Relay::OnHubReadable(uv_poll_t* handle, int, int) { RunBatch(static_cast<Hub*>(handle->data)); }

// At environment teardown every relay has been collected; the handles go with the loop.
void FreeHub(Napi::Env, Hub* hub) {
  uv_close(reinterpret_cast<uv_handle_t*>(hub->poll), [](uv_handle_t* p) { delete reinterpret_cast<uv_poll_t*>(p); });
  uv_close(reinterpret_cast<uv_handle_t*>(hub->idle), [](uv_handle_t* p) { delete reinterpret_cast<uv_idle_t*>(p); });
  close(hub->epfd);
  delete hub;
}

Hub* HubOf(Napi::Env env) {
  Hub* hub = env.GetInstanceData<Hub>();
  if (hub != nullptr) return hub;
  hub = new Hub;
  hub->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (hub->epfd < 0) {
    int err = errno;
    delete hub;
    Napi::Error error = Napi::Error::New(env, std::string("epoll_create1: ") + strerror(err));
    error.Set("code", Napi::String::New(env, ErrnoName(err)));
    error.ThrowAsJavaScriptException();
    return nullptr;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  hub->poll = new uv_poll_t;
  uv_poll_init(loop, hub->poll, hub->epfd);
  hub->poll->data = hub;
  hub->idle = new uv_idle_t;
  uv_idle_init(loop, hub->idle);
  hub->idle->data = hub;
  env.SetInstanceData<Hub, FreeHub>(hub);
  return hub;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Relay", Relay::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(handcheck_splice, Init)
