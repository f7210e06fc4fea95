// socket(2) and setsockopt(SO_MARK) for a TCP socket Node then adopts (new net.Socket({ fd })) and
// connects. Node's net has no way to set SO_MARK, and the mark must be on the socket before its SYN
// leaves: a guard's probe marks its SYN with the bypass bit so the guard's own NFQUEUE rule does not
// hold it (the mark rides on the skb through the loopback device to the INPUT hook). SO_MARK needs
// CAP_NET_ADMIN, or CAP_NET_RAW from Linux 5.17 (net/core/sock.c, sockopt_ns_capable in
// sk_setsockopt); without either this throws EPERM. The socket is
// non-blocking and close-on-exec, unbound and unconnected, which libuv's uv_tcp_open accepts.
#include "socket_mark.h"

#include "errno_name.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// (family: 4 | 6, mark: number) -> fd
Napi::Value MarkedTcpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "(family: 4 | 6, mark)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int family = info[0].As<Napi::Number>().Int32Value();
  if (family != 4 && family != 6) {
    Napi::RangeError::New(env, "family must be 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  unsigned int mark = info[1].As<Napi::Number>().Uint32Value();
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "setsockopt(SO_MARK)", err);
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitSocketMark(Napi::Env env, Napi::Object exports) {
  exports.Set("markedTcpSocket", Napi::Function::New(env, MarkedTcpSocket));
}
