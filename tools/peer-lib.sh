# Sourced by the peer comparisons (compare.sh, compare-https.sh).
# `install_missing NAME PACKAGE...` installs the Debian packages given
# (none: nothing to do) with apt-get when run as root; otherwise NAME asks for them and the
# tool exits.
install_missing() {
    local name=$1
    shift
    [ $# -gt 0 ] || return 0
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "$name: please install $* (apt-get)" >&2
        exit 1
    fi
}

# `nginx_http_settings WORK`: the settings of the nginx HTTP peers (inside `http { }`): no
# access log, sendfile, long keep-alive, HLS types, temp paths under WORK/nginx/tmp.
nginx_http_settings() {
    cat <<CONF
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server_tokens off;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    default_type application/octet-stream;
    client_body_temp_path $1/nginx/tmp/body;
    proxy_temp_path $1/nginx/tmp/proxy;
    fastcgi_temp_path $1/nginx/tmp/fastcgi;
    uwsgi_temp_path $1/nginx/tmp/uwsgi;
    scgi_temp_path $1/nginx/tmp/scgi;
CONF
}
