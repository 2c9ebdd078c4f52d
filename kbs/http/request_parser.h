// The HTTP/1.1 request parser the server uses: Boost.Beast's basic_parser
// with header fields stored by us. Beast's stock `basic_fields` caps one
// field at about 64 KiB; CoCo Bearer tokens can be larger, so fields go into
// a plain vector, bounded per field and (through header_limit) in total.
#ifndef KBS_KBS_HTTP_REQUEST_PARSER_H_
#define KBS_KBS_HTTP_REQUEST_PARSER_H_

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "kbs/http/http_message.h"

namespace kbs::http {

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser(size_t max_field, size_t max_head, size_t max_body);

  HttpRequest& request() { return request_; }
  // True when header_limit was raised for one oversized field.
  bool field_too_large() const { return field_too_large_; }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb, string_view method, string_view target, int,
                       error_code&) override;
  void on_response_impl(int, string_view, int, error_code& ec) override;
  void on_field_impl(boost::beast::http::field, string_view name, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override;
  std::size_t on_body_impl(string_view body, error_code&) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override;
  void on_finish_impl(error_code&) override {}

  size_t max_field_;
  bool field_too_large_ = false;
  HttpRequest request_;
};

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_REQUEST_PARSER_H_
