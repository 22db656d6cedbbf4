# Sourced by the peer comparisons (compare.sh, compare-https.sh) and ab-rtmp.sh.
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

# `free_port`: a loopback TCP port nobody listens on.
free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 20000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# `publish_tee BOUND LOG URL...`: in the background, for at most BOUND seconds, one ffmpeg
# publisher (testsrc2 320x240 25 fps, x264 300 kb/s, GOP 2 s, AAC) pushing the same encoded
# stream to every RTMP URL (ffmpeg's tee muxer), its messages into LOG.
publish_tee() {
    local bound=$1 log=$2 outs="" url
    shift 2
    for url in "$@"; do outs+="${outs:+|}[f=flv:onfail=ignore]$url"; done
    timeout "$bound" ffmpeg -nostdin -hide_banner -loglevel error -re \
        -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
        -c:v libx264 -preset veryfast -tune zerolatency -g 50 -b:v 300k -c:a aac -ac 2 \
        -flags +global_header -map 0:v -map 1:a -f tee "$outs" >"$log" 2>&1 &
}
