#include "kbs/http/request_parser.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace kbs::http {

namespace bhttp = boost::beast::http;

RequestParser::RequestParser(size_t max_field, size_t max_head, size_t max_body)
    : max_field_(max_field) {
  header_limit(static_cast<std::uint32_t>(max_head));
  body_limit(max_body);
}

void RequestParser::on_request_impl(bhttp::verb, string_view method, string_view target, int,
                                    error_code&) {
  request_.method.assign(method.data(), method.size());
  request_.target.assign(target.data(), target.size());
}

void RequestParser::on_response_impl(int, string_view, int, error_code& ec) {
  ec = bhttp::error::bad_method;
}

void RequestParser::on_field_impl(bhttp::field, string_view name, string_view value,
                                  error_code& ec) {
  if (value.size() > max_field_) {
    field_too_large_ = true;
    ec = bhttp::error::header_limit;
    return;
  }
  std::string lower(name.data(), name.size());
  absl::AsciiStrToLower(&lower);
  request_.headers.emplace_back(std::move(lower), std::string(value.data(), value.size()));
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) {
  // Beast has already checked the declared length against body_limit. The
  // reservation is capped: a client may announce a large body and send
  // nothing (the string grows with what does arrive).
  constexpr std::uint64_t kMaxReserve = 64 << 10;
  if (length) request_.body.reserve(static_cast<size_t>(std::min(*length, kMaxReserve)));
}

std::size_t RequestParser::on_body_impl(string_view body, error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

}  // namespace kbs::http
