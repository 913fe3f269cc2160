<?php

namespace Tidings\Laravel\Tests;

use Illuminate\Http\Request;
use Tidings\Laravel\Tests\Fixtures\User;

/** GET /tidings/token, the bell's refresh URL (the route the service provider registers). */
class TokenRouteTest extends TestCase
{
    public function testAGuestGets401JsonNeverARedirect(): void
    {
        $response = $this->dispatch(Request::create('/tidings/token'));

        $this->assertSame(401, $response->getStatusCode());
        $this->assertSame('unauthorized', json_decode($response->getContent(), true)['error']);
        $this->assertFalse($response->headers->has('Location'));
    }

    public function testTheLoggedInUserGetsATokenTheServerAccepts(): void
    {
        $request = Request::create('/tidings/token');
        $request->setUserResolver(function () {
            return new User(['id' => 'laravel-route']);
        });
        $response = $this->dispatch($request);

        $this->assertSame(200, $response->getStatusCode());
        $this->assertStringContainsString('no-store', $response->headers->get('Cache-Control'));
        $token = json_decode($response->getContent(), true)['token'];
        $count = (new \GuzzleHttp\Client(['timeout' => 10]))->get(rtrim(getenv('TIDINGS_URL'), '/') . '/notifications/unread-count', [
            'headers' => ['Authorization' => "Bearer {$token}"],
        ]);
        $this->assertSame(200, $count->getStatusCode());
    }

    public function testWithoutTheSecretATidingsOutageIsA503JsonNotAnError(): void
    {
        $this->app->instance(\Illuminate\Contracts\Debug\ExceptionHandler::class, $handler = new Fixtures\RecordingHandler());
        $this->app->instance(\Tidings\Laravel\Tidings::class, new \Tidings\Laravel\Tidings('http://127.0.0.1:9', 'key', null, 2.0, 0));
        $request = Request::create('/tidings/token');
        $request->setUserResolver(function () {
            return new User(['id' => 'laravel-route-down']);
        });
        $response = $this->dispatch($request);

        $this->assertSame(503, $response->getStatusCode());
        $this->assertSame('unavailable', json_decode($response->getContent(), true)['error']);
        $this->assertCount(1, $handler->reported);
    }

    /** As the HTTP kernel does: the request is the container's, then the router runs it. */
    private function dispatch(Request $request)
    {
        $this->app->instance('request', $request);

        return $this->app->make('router')->dispatch($request);
    }
}
