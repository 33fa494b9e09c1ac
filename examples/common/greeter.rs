//! A gRPC service written by hand (no protoc, no tonic-build): the
//! `helloworld.Greeter/SayHello` unary method, with its messages as
//! `prost::Message` types, a server built on `tonic::server::Grpc`, and a
//! client call built on `tonic::client::Grpc`.
//!
//! ```text
//! syntax = "proto3";
//! package helloworld;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower_service::Service;

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The service's name.
pub const SERVICE: &str = "helloworld.Greeter";
/// The path of its one method.
pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// What the server answers to `name` from `peer`: the peer address shows
/// that the transport's connect info reached the handler.
pub fn greeting(name: &str, peer: Option<SocketAddr>) -> String {
    match peer {
        Some(peer) => format!("hello {name}, from {peer}"),
        None => format!("hello {name}, from an unknown address"),
    }
}

/// The `helloworld.Greeter` server, for `tonic::transport::Server::add_service`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != SAY_HELLO {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(async move {
            let codec = ProstCodec::<HelloReply, HelloRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(SayHello, req).await)
        })
    }
}

/// The `SayHello` handler: a unary service over the decoded messages.
struct SayHello;

impl Service<Request<HelloRequest>> for SayHello {
    type Response = Response<HelloReply>;
    type Error = Status;
    type Future = Ready<Result<Response<HelloReply>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<HelloRequest>) -> Self::Future {
        let peer = req.remote_addr();
        let message = greeting(&req.get_ref().name, peer);
        ready(Ok(Response::new(HelloReply { message })))
    }
}

/// Calls `SayHello` on `channel`; returns the reply's message.
pub async fn say_hello(channel: tonic::transport::Channel, name: &str) -> Result<String, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    let codec = ProstCodec::<HelloRequest, HelloReply>::default();
    let request = Request::new(HelloRequest {
        name: name.to_owned(),
    });
    let path = http::uri::PathAndQuery::from_static(SAY_HELLO);
    let reply = grpc.unary(request, path, codec).await?;
    Ok(reply.into_inner().message)
}
