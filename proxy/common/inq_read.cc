#include "proxy/common/inq_read.h"

namespace turnout::inq_detail {
namespace {

// The reactor a registered descriptor belongs to: descriptor_state's
// `reactor_` is private. An explicit instantiation may name a private
// member (the standard exempts its arguments from access checking); the
// friend it defines hands the member pointer out. Defined in this one
// translation unit only.
using DescriptorState = std::remove_pointer_t<asio::detail::epoll_reactor::per_descriptor_data>;
using ReactorMember = asio::detail::epoll_reactor* DescriptorState::*;

struct ReactorTag {
  friend ReactorMember reactorMember(ReactorTag);
};
template <ReactorMember M>
struct Expose {
  friend ReactorMember reactorMember(ReactorTag) { return M; }
};
template struct Expose<&DescriptorState::reactor_>;

}  // namespace

asio::detail::epoll_reactor& reactorOf(TcpSocket& socket) {
  auto& impl = SocketAccess::implOf(socket);
  if (impl.reactor_data_ != nullptr) return *(impl.reactor_data_->*reactorMember(ReactorTag{}));
  // Not registered (closed): start_op answers bad_descriptor; the service
  // lookup is the slow way to the same reactor.
  return asio::use_service<asio::detail::epoll_reactor>(socket.get_executor().context());
}

}  // namespace turnout::inq_detail
