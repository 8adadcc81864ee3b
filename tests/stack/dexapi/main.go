// Command dexapi calls Dex's gRPC admin API, for the SSO tests: an admin revoking a
// user's refresh token (Dex has no HTTP endpoint for it).
//
//	dexapi -addr 127.0.0.1:PORT revoke-refresh SUBJECT CLIENT_ID
//
// SUBJECT is the `sub` of an ID token Dex issued to the user. Prints `revoked` or
// `not found`; exits 1 on any other outcome.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	api "github.com/dexidp/dex/api/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	addr := flag.String("addr", "", "Dex's gRPC address (host:port), plaintext")
	flag.Parse()
	args := flag.Args()
	if *addr == "" || len(args) != 3 || args[0] != "revoke-refresh" {
		fmt.Fprintln(os.Stderr, "usage: dexapi -addr HOST:PORT revoke-refresh SUBJECT CLIENT_ID")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dexapi:", err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := api.NewDexClient(conn).RevokeRefresh(ctx, &api.RevokeRefreshReq{UserId: args[1], ClientId: args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dexapi:", err)
		os.Exit(1)
	}
	if resp.NotFound {
		fmt.Println("not found")
		return
	}
	fmt.Println("revoked")
}
